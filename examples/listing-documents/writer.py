#!/usr/bin/env python3
"""The listing-documents application's writes: random but realistic
transactions against the normalized tables of schema.sql, on the
application's own connection (denorm is not in the write path). Customers
post reviews (popular products get more), edit their rating or title,
moderators delete reviews (sometimes a product's last one); sellers rename
themselves (every page of their products carries the name), reprice and
rename products, list new products and take products down (ON DELETE
CASCADE takes the reviews).

    python3 writer.py app.db [--transactions N] [--seed S]
"""

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))
import example_writer  # noqa: E402  (examples/example_writer.py: the driver all examples share)


AUTHORS = ["Sam", "Priya", "Lukas", "Noor", "Kenji", "Ines", "Amara", "Mateo", "Yuki", "Zoe", "Omar", "Tom"]
TITLES = {
    1: ["Broke after a week", "Do not buy"],
    2: ["Disappointed", "Not as described"],
    3: ["It's fine", "OK for the price"],
    4: ["Solid", "Good value"],
    5: ["Love it", "Perfect", "Best purchase this year"],
}
SELLER_NAMES = ["Acme Outdoor", "Acme Outdoor Co.", "Nordic Kitchen", "Nordisk Kök", "Pixel Gadgets", "Pixel & Co",
                "Green Thumb", "Green Thumb Garden", "Bookish", "Bookish Ltd", "Summit Supply", "Tinker Tools"]
PRODUCTS = ["Camp stove", "Water filter", "Dutch oven", "Spice grinder", "Smart plug", "Monitor arm", "Seed tray",
            "Garden hose 25m", "Atlas of rivers", "Poetry anthology"]


class App:
    def __init__(self, conn, rng):
        self.db = conn
        self.rng = rng
        (last,) = conn.execute("SELECT max(created_at) FROM reviews").fetchone()
        # Minutes since 2025-02-01T00:00 (28-day months), continuing after
        # the newest review, so every new review is the newest.
        last = last or "2025-02-01T00:00:00Z"
        month, day, hour, minute = int(last[5:7]), int(last[8:10]), int(last[11:13]), int(last[14:16])
        self.minute = max(0, (month - 2) * 40320 + (day - 1) * 1440 + hour * 60 + minute)

    def pick(self, table, column="id"):
        """A random existing `column` value of `table`, or None when it is empty."""
        (n,) = self.db.execute(f"SELECT count(*) FROM {table}").fetchone()
        if n == 0:
            return None
        query = f"SELECT {column} FROM {table} ORDER BY {column} LIMIT 1 OFFSET ?"
        return self.db.execute(query, (self.rng.randrange(n),)).fetchone()[0]

    def popular_product(self):
        """A product picked with probability proportional to its reviews + 1."""
        rows = self.db.execute(
            "SELECT p.id, count(r.id) + 1 FROM products p LEFT JOIN reviews r ON r.product_id = p.id GROUP BY p.id"
        ).fetchall()
        if not rows:
            return None
        ids, weights = zip(*rows)
        return self.rng.choices(ids, weights)[0]

    def next_id(self, table):
        return self.db.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()[0]

    def now(self):
        self.minute += self.rng.randint(1, 30)
        m = self.minute
        return f"2025-{2 + m // 40320:02d}-{1 + m // 1440 % 28:02d}T{m // 60 % 24:02d}:{m % 60:02d}:00Z"

    def rating(self):
        return self.rng.choices([1, 2, 3, 4, 5], [1, 1, 2, 4, 6])[0]

    # -- reviews -----------------------------------------------------------
    def review(self):
        # The newest review enters the product's embedded list; the oldest
        # of the three leaves it.
        product = self.popular_product()
        if product is None:
            return self.list_product()
        rating = self.rating()
        self.db.execute(
            "INSERT INTO reviews (id, product_id, author, rating, title, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (self.next_id("reviews"), product, self.rng.choice(AUTHORS), rating,
             self.rng.choice(TITLES[rating]), self.now()),
        )

    def edit_review(self):
        # A changed rating moves the average and two histogram buckets.
        review = self.pick("reviews")
        if review is not None:
            rating = self.rating()
            self.db.execute(
                "UPDATE reviews SET rating = ?, title = ? WHERE id = ?",
                (rating, self.rng.choice(TITLES[rating]) + " (edited)", review),
            )

    def delete_review(self):
        # Deleting one of the newest three brings the fourth newest back in.
        if self.rng.random() < 0.5:
            row = self.db.execute(
                "SELECT id FROM reviews WHERE product_id = ? ORDER BY created_at DESC, id DESC LIMIT 1",
                (self.popular_product(),),
            ).fetchone()
            review = row[0] if row else None
        else:
            review = self.pick("reviews")
        if review is not None:
            self.db.execute("DELETE FROM reviews WHERE id = ?", (review,))

    # -- sellers and products ----------------------------------------------
    def rename_seller(self):
        # The copy: every page of the seller's products carries the name.
        seller = self.pick("sellers")
        if seller is not None:
            self.db.execute("UPDATE sellers SET name = ? WHERE id = ?", (self.rng.choice(SELLER_NAMES), seller))

    def new_seller(self):
        self.db.execute(
            "INSERT INTO sellers (id, name) VALUES (?, ?)", (self.next_id("sellers"), self.rng.choice(SELLER_NAMES))
        )

    def list_product(self):
        seller = self.pick("sellers")
        if seller is None:
            return self.new_seller()
        self.db.execute(
            "INSERT INTO products (id, seller_id, name, price_cents) VALUES (?, ?, ?, ?)",
            (self.next_id("products"), seller, self.rng.choice(PRODUCTS), self.rng.randint(5, 300) * 100 - 1),
        )

    def edit_product(self):
        product = self.pick("products")
        if product is None:
            return
        if self.rng.random() < 0.7:
            self.db.execute(
                "UPDATE products SET price_cents = price_cents * ? / 100 WHERE id = ?",
                (self.rng.choice([80, 90, 110, 125]), product),
            )
        else:
            self.db.execute("UPDATE products SET name = name || ' v2' WHERE id = ?", (product,))

    def take_down(self):
        # A recent listing is withdrawn (the seed catalog, 1-15, stays, so
        # the README's curl lines always find product 1).
        product = self.pick("(SELECT id FROM products WHERE id > 15)")
        if product is not None:
            self.db.execute("DELETE FROM products WHERE id = ?", (product,))


ACTIONS = [
    (App.review, 8),
    (App.edit_review, 2),
    (App.delete_review, 2),
    (App.rename_seller, 1),
    (App.new_seller, 0.05),
    (App.list_product, 0.2),
    (App.edit_product, 1),
    (App.take_down, 0.05),
]


def main():
    example_writer.run(__doc__, App, ACTIONS, ("sellers", "products", "reviews"), foreign_keys=True)


if __name__ == "__main__":
    main()
