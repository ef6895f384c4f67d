#!/usr/bin/env python3
"""The product-reviews application's writes: random but realistic transactions
against the normalized tables of schema.sql, on the application's own
connection (denorm is not in the write path). Reviews are submitted, edited
and deleted; products are added, renamed, moved to another category,
renumbered (the reviews follow by ON UPDATE CASCADE), merged into another
product and discontinued (their reviews go by ON DELETE CASCADE).

    python3 writer.py app.db [--transactions N] [--seed S]
"""

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))
import example_writer  # noqa: E402  (examples/example_writer.py: the driver all examples share)


CATEGORIES = ["Electronics", "Accessories", "Audio", "Office", "Gaming"]
NOUNS = ["Keyboard", "Mouse", "Headset", "Webcam", "Desk Lamp", "Dock", "Speaker", "Stand", "Cable", "Hub"]
ADJECTIVES = ["Wireless", "Compact", "Pro", "Ergonomic", "Silent", "RGB", "Travel", "Studio"]
NAMES = ["Ana", "Ben", "Chloe", "Dev", "Elif", "Femi", "Greta", "Hiro", "Ivan", "Jade", "Kofi", "Lena"]
BODIES = [None, "Great value", "Stopped working after a week", "Exactly as described", "Would buy again", "Meh"]


class App:
    def __init__(self, conn, rng):
        self.db = conn
        self.rng = rng
        self.day = 0

    def pick(self, table):
        """A random existing id of `table`, or None when it is empty."""
        (n,) = self.db.execute(f"SELECT count(*) FROM {table}").fetchone()
        if n == 0:
            return None
        row = self.db.execute(f"SELECT id FROM {table} ORDER BY id LIMIT 1 OFFSET ?", (self.rng.randrange(n),))
        return row.fetchone()[0]

    def next_id(self, table):
        return self.db.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()[0]

    def today(self):
        self.day += self.rng.random() < 0.1
        return f"2025-02-{1 + self.day % 28:02d}"

    # -- reviews -----------------------------------------------------------
    def submit_review(self):
        product, user = self.pick("products"), self.pick("users")
        if product is None or user is None:
            return self.new_product()
        rating = self.rng.choices([1, 2, 3, 4, 5], [1, 1, 2, 4, 6])[0]
        self.db.execute(
            "INSERT INTO reviews (product_id, user_id, rating, body, created_at) VALUES (?, ?, ?, ?, ?)",
            (product, user, rating, self.rng.choice(BODIES), self.today()),
        )

    def edit_review(self):
        review = self.pick("reviews")
        if review is not None:
            self.db.execute(
                "UPDATE reviews SET rating = ?, body = ? WHERE id = ?",
                (self.rng.randint(1, 5), self.rng.choice(BODIES), review),
            )

    def delete_review(self):
        review = self.pick("reviews")
        if review is not None:
            self.db.execute("DELETE FROM reviews WHERE id = ?", (review,))

    # -- products ----------------------------------------------------------
    def new_product(self):
        name = f"{self.rng.choice(ADJECTIVES)} {self.rng.choice(NOUNS)}"
        self.db.execute(
            "INSERT INTO products (id, name, category, price_cents) VALUES (?, ?, ?, ?)",
            (self.next_id("products"), name, self.rng.choice(CATEGORIES), self.rng.randrange(499, 29999)),
        )

    def rename_product(self):
        product = self.pick("products")
        if product is not None:
            name = f"{self.rng.choice(ADJECTIVES)} {self.rng.choice(NOUNS)} {self.rng.randint(2, 9)}"
            self.db.execute("UPDATE products SET name = ? WHERE id = ?", (name, product))

    def recategorize(self):
        product = self.pick("products")
        if product is not None:
            self.db.execute("UPDATE products SET category = ? WHERE id = ?", (self.rng.choice(CATEGORIES), product))

    def reprice(self):
        # No view reads price_cents: the triggers log nothing for this update.
        product = self.pick("products")
        if product is not None:
            self.db.execute("UPDATE products SET price_cents = price_cents + 100 WHERE id = ?", (product,))

    def renumber_product(self):
        # A key change: the reviews follow by ON UPDATE CASCADE.
        product = self.pick("products")
        if product is not None:
            self.db.execute("UPDATE products SET id = ? WHERE id = ?", (self.next_id("products"), product))

    def merge_products(self):
        # A duplicate listing is folded into another: its reviews move, it goes.
        keep, duplicate = self.pick("products"), self.pick("products")
        if keep is not None and keep != duplicate:
            self.db.execute("UPDATE reviews SET product_id = ? WHERE product_id = ?", (keep, duplicate))
            self.db.execute("DELETE FROM products WHERE id = ?", (duplicate,))

    def discontinue(self):
        # Deleting a referenced row: ON DELETE CASCADE takes its reviews.
        product = self.pick("products")
        if product is not None:
            self.db.execute("DELETE FROM products WHERE id = ?", (product,))

    def sign_up(self):
        self.db.execute(
            "INSERT INTO users (id, name) VALUES (?, ?)",
            (self.next_id("users"), f"{self.rng.choice(NAMES)} {self.rng.randint(1, 99)}"),
        )


ACTIONS = [
    (App.submit_review, 8),
    (App.edit_review, 3),
    (App.delete_review, 2),
    (App.new_product, 1.5),
    (App.rename_product, 1),
    (App.recategorize, 1),
    (App.reprice, 0.5),
    (App.renumber_product, 0.5),
    (App.merge_products, 0.4),
    (App.discontinue, 0.4),
    (App.sign_up, 0.5),
]


def main():
    example_writer.run(__doc__, App, ACTIONS, ("products", "reviews", "users"), foreign_keys=True)


if __name__ == "__main__":
    main()
