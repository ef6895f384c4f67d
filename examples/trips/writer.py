#!/usr/bin/env python3
"""The ride-hailing application's writes: random but realistic transactions
against the normalized tables of schema.sql, on the application's own
connection (denorm is not in the write path). Trips are requested, started,
completed with a fare and cancelled; support reassigns a trip to another
driver, corrects its city or date (both move the trip within the views'
keys), renumbers it, or deletes a test trip; drivers join, are renamed,
move city and leave (their row is deleted while trips still reference it).

    python3 writer.py app.db [--transactions N] [--seed S]
"""

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))
import example_writer  # noqa: E402  (examples/example_writer.py: the driver all examples share)


CITIES = ["Lisbon", "Porto", "Madrid", "Berlin"]
FIRST = ["Sarah", "Omar", "Ines", "Kenji", "Amara", "Lukas", "Priya", "Mateo", "Yuki", "Noor"]
LAST = ["Chen", "Haddad", "Duarte", "Sato", "Okafor", "Berg", "Nair", "Rossi"]


class App:
    def __init__(self, conn, rng):
        self.db = conn
        self.rng = rng
        self.day = 15

    def pick(self, table, where="1"):
        """A random id of `table` among rows matching `where`, or None."""
        (n,) = self.db.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()
        if n == 0:
            return None
        query = f"SELECT id FROM {table} WHERE {where} ORDER BY id LIMIT 1 OFFSET ?"
        return self.db.execute(query, (self.rng.randrange(n),)).fetchone()[0]

    def next_id(self, table):
        return self.db.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()[0]

    def today(self):
        self.day += self.rng.random() < 0.08
        return f"2025-01-{min(self.day, 31):02d}"

    def name(self):
        return f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}"

    # -- trips -------------------------------------------------------------
    def request_trip(self):
        driver, rider = self.pick("drivers"), self.pick("riders")
        if driver is None:
            return self.onboard_driver()
        if rider is None:
            return self.new_rider()
        (city,) = self.db.execute("SELECT city FROM drivers WHERE id = ?", (driver,)).fetchone()
        self.db.execute(
            "INSERT INTO trips (id, driver_id, rider_id, city, started_on, status) VALUES (?, ?, ?, ?, ?, 'requested')",
            (self.next_id("trips"), driver, rider, city, self.today()),
        )

    def start_trip(self):
        trip = self.pick("trips", "status = 'requested'")
        if trip is not None:
            self.db.execute("UPDATE trips SET status = 'in_progress' WHERE id = ?", (trip,))

    def complete_trip(self):
        trip = self.pick("trips", "status IN ('requested', 'in_progress')")
        if trip is not None:
            km = round(self.rng.uniform(1, 25), 1)
            self.db.execute(
                "UPDATE trips SET status = 'completed', fare_cents = ?, distance_km = ? WHERE id = ?",
                (int(300 + km * 120), km, trip),
            )

    def cancel_trip(self):
        trip = self.pick("trips", "status <> 'completed'")
        if trip is not None:
            self.db.execute("UPDATE trips SET status = 'cancelled' WHERE id = ?", (trip,))

    def reassign_trip(self):
        # Key change in trips_by_driver: the row moves to another driver.
        trip, driver = self.pick("trips", "status <> 'completed'"), self.pick("drivers")
        if trip is not None and driver is not None:
            self.db.execute("UPDATE trips SET driver_id = ? WHERE id = ?", (driver, trip))

    def correct_trip(self):
        # Key change in trips_by_city_date (and the date in trips_by_driver).
        trip = self.pick("trips")
        if trip is not None:
            self.db.execute(
                "UPDATE trips SET city = ?, started_on = date(started_on, ?) WHERE id = ?",
                (self.rng.choice(CITIES), f"{self.rng.choice([-1, 0, 1])} day", trip),
            )

    def renumber_trip(self):
        trip = self.pick("trips")
        if trip is not None:
            self.db.execute("UPDATE trips SET id = ? WHERE id = ?", (self.next_id("trips"), trip))

    def delete_test_trip(self):
        trip = self.pick("trips")
        if trip is not None:
            self.db.execute("DELETE FROM trips WHERE id = ?", (trip,))

    # -- drivers and riders ------------------------------------------------
    def onboard_driver(self):
        self.db.execute(
            "INSERT INTO drivers (id, name, city) VALUES (?, ?, ?)",
            (self.next_id("drivers"), self.name(), self.rng.choice(CITIES)),
        )

    def rename_driver(self):
        driver = self.pick("drivers")
        if driver is not None:
            self.db.execute("UPDATE drivers SET name = ? WHERE id = ?", (self.name(), driver))

    def relocate_driver(self):
        driver = self.pick("drivers")
        if driver is not None:
            self.db.execute("UPDATE drivers SET city = ? WHERE id = ?", (self.rng.choice(CITIES), driver))

    def offboard_driver(self):
        # Deleting a referenced row: the driver's past trips stay.
        driver = self.pick("drivers")
        if driver is not None:
            self.db.execute("DELETE FROM drivers WHERE id = ?", (driver,))

    def new_rider(self):
        self.db.execute("INSERT INTO riders (id, name) VALUES (?, ?)", (self.next_id("riders"), self.name()))


ACTIONS = [
    (App.request_trip, 6),
    (App.start_trip, 3),
    (App.complete_trip, 4),
    (App.cancel_trip, 1),
    (App.reassign_trip, 1),
    (App.correct_trip, 1),
    (App.renumber_trip, 0.5),
    (App.delete_test_trip, 0.5),
    (App.onboard_driver, 0.6),
    (App.rename_driver, 0.6),
    (App.relocate_driver, 0.3),
    (App.offboard_driver, 0.3),
    (App.new_rider, 0.6),
]


def main():
    example_writer.run(__doc__, App, ACTIONS, ("drivers", "riders", "trips"))


if __name__ == "__main__":
    main()
