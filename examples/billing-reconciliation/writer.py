#!/usr/bin/env python3
"""The billing service's writes: random but realistic transactions against
the normalized tables of schema.sql, on the application's own connection
(denorm is not in the write path). Usage is metered (new events), corrected
(units or price changed), moved to the right customer, voided (deleted);
customers sign up, change plan and are renamed.

    python3 writer.py app.db [--transactions N] [--seed S]
"""

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))
import example_writer  # noqa: E402  (examples/example_writer.py: the driver all examples share)

PLANS = ["free", "team", "enterprise"]
NAMES = ["Stark", "Wayne", "Cyberdyne", "Tyrell", "Wonka", "Soylent", "Gringotts"]


class App:
    def __init__(self, conn, rng):
        self.db = conn
        self.rng = rng

    def pick(self, table):
        """A random id of `table`, or None when it is empty."""
        (n,) = self.db.execute(f"SELECT count(*) FROM {table}").fetchone()
        if n == 0:
            return None
        return self.db.execute(f"SELECT id FROM {table} ORDER BY id LIMIT 1 OFFSET ?", (self.rng.randrange(n),)).fetchone()[0]

    def next_id(self, table):
        return self.db.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()[0]

    def meter(self):
        customer = self.pick("customers")
        day = f"2026-12-{self.rng.randint(1, 9):02d}"
        self.db.execute(
            "INSERT INTO usage_events (id, customer_id, units, unit_price_cents, billed_on) VALUES (?, ?, ?, ?, ?)",
            (self.next_id("usage_events"), customer, self.rng.randint(1, 20), self.rng.choice([10, 15, 20]), day),
        )

    def correct_units(self):
        event = self.pick("usage_events")
        if event is not None:
            self.db.execute("UPDATE usage_events SET units = ? WHERE id = ?", (self.rng.randint(1, 20), event))

    def reprice(self):
        event = self.pick("usage_events")
        if event is not None:
            self.db.execute("UPDATE usage_events SET unit_price_cents = unit_price_cents + 5 WHERE id = ?", (event,))

    def reassign(self):
        event, customer = self.pick("usage_events"), self.pick("customers")
        if event is not None:
            self.db.execute("UPDATE usage_events SET customer_id = ? WHERE id = ?", (customer, event))

    def void(self):
        event = self.pick("usage_events")
        if event is not None:
            self.db.execute("DELETE FROM usage_events WHERE id = ?", (event,))

    def sign_up(self):
        self.db.execute(
            "INSERT INTO customers (id, name, plan) VALUES (?, ?, ?)",
            (self.next_id("customers"), self.rng.choice(NAMES), self.rng.choice(PLANS)),
        )

    def change_plan(self):
        self.db.execute("UPDATE customers SET plan = ? WHERE id = ?", (self.rng.choice(PLANS), self.pick("customers")))

    def rename(self):
        self.db.execute("UPDATE customers SET name = name || '!' WHERE id = ?", (self.pick("customers"),))


if __name__ == "__main__":
    example_writer.run(
        __doc__,
        App,
        [
            (App.meter, 10),
            (App.correct_units, 3),
            (App.reprice, 2),
            (App.reassign, 2),
            (App.void, 2),
            (App.sign_up, 1),
            (App.change_plan, 1),
            (App.rename, 1),
        ],
        ["customers", "usage_events"],
    )
