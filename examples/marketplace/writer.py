#!/usr/bin/env python3
"""The marketplace application's writes: random but realistic transactions
against the normalized tables of schema.sql, on the application's own
connection (denorm is not in the write path). Users sign up, rename
themselves (the rename fans out to every post card) and are deleted (their
posts, reviews, trips and orders stay behind: foreign keys are declared but
not enforced, SQLite's default); posts are written, renumbered and deleted;
reviews are submitted, edited, moved to another product and deleted;
products are added, renamed and discontinued; trips are taken, reassigned
and corrected; orders are placed, shipped, cancelled, re-dated, and their
items changed (including a swap to another product: a primary-key change).

    python3 writer.py app.db [--transactions N] [--seed S]
"""

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))
import example_writer  # noqa: E402  (examples/example_writer.py: the driver all examples share)


FIRST = ["Sarah", "Omar", "Ines", "Kenji", "Amara", "Lukas", "Priya", "Mateo", "Yuki", "Noor"]
LAST = ["Chen", "Haddad", "Duarte", "Sato", "Okafor", "Berg", "Nair", "Rossi"]
PRODUCTS = ["Keyboard", "Mouse", "Wrist Rest", "Cable", "Monitor Arm", "Webcam", "Headset", "Dock"]
CATEGORIES = ["Electronics", "Accessories"]
CITIES = ["Lisbon", "Porto", "Madrid"]
BODIES = ["Just shipped v{n}.0", "New keyboard day", "Review #{n} is up", "Thoughts on switches", "Hello!"]


class App:
    def __init__(self, conn, rng):
        self.db = conn
        self.rng = rng
        self.day = 16

    def pick(self, table, where="1", column="id"):
        """A random `column` value of `table` among rows matching `where`, or None."""
        (n,) = self.db.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()
        if n == 0:
            return None
        query = f"SELECT {column} FROM {table} WHERE {where} ORDER BY {column} LIMIT 1 OFFSET ?"
        return self.db.execute(query, (self.rng.randrange(n),)).fetchone()[0]

    def next_id(self, table):
        return self.db.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()[0]

    def today(self):
        self.day += self.rng.random() < 0.1
        return f"2025-01-{min(self.day, 31):02d}"

    def name(self):
        return f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}"

    # -- users and posts ---------------------------------------------------
    def sign_up(self):
        name = self.name()
        avatar = None if self.rng.random() < 0.3 else f"https://cdn.example.com/{name.split()[0].lower()}.jpg"
        self.db.execute(
            "INSERT INTO users (id, name, avatar_url, created_at) VALUES (?, ?, ?, ?)",
            (self.next_id("users"), name, avatar, self.today()),
        )

    def rename(self):
        user = self.pick("users")
        if user is not None:
            self.db.execute("UPDATE users SET name = ? WHERE id = ?", (self.name(), user))

    def delete_user(self):
        # Deleting a referenced row: nothing cascades, the user's rows stay.
        user = self.pick("users")
        if user is not None:
            self.db.execute("DELETE FROM users WHERE id = ?", (user,))

    def post(self):
        user = self.pick("users")
        if user is None:
            return self.sign_up()
        self.db.execute(
            "INSERT INTO posts (id, author_id, body, created_at) VALUES (?, ?, ?, ?)",
            (self.next_id("posts"), user, self.rng.choice(BODIES).format(n=self.rng.randint(2, 9)), self.today()),
        )

    def renumber_post(self):
        post = self.pick("posts")
        if post is not None:
            self.db.execute("UPDATE posts SET id = ? WHERE id = ?", (self.next_id("posts"), post))

    def delete_post(self):
        post = self.pick("posts")
        if post is not None:
            self.db.execute("DELETE FROM posts WHERE id = ?", (post,))

    # -- products and reviews ----------------------------------------------
    def new_product(self):
        self.db.execute(
            "INSERT INTO products (id, name, category, price_cents) VALUES (?, ?, ?, ?)",
            (self.next_id("products"), self.rng.choice(PRODUCTS), self.rng.choice(CATEGORIES), self.rng.randrange(499, 9999)),
        )

    def rename_product(self):
        product = self.pick("products")
        if product is not None:
            name = f"{self.rng.choice(PRODUCTS)} Mk{self.rng.randint(2, 5)}"
            self.db.execute("UPDATE products SET name = ? WHERE id = ?", (name, product))

    def discontinue(self):
        # Its reviews and order items stay: product_stats drops the product.
        product = self.pick("products")
        if product is not None:
            self.db.execute("DELETE FROM products WHERE id = ?", (product,))

    def review(self):
        product, user = self.pick("products"), self.pick("users")
        if product is None or user is None:
            return self.new_product()
        self.db.execute(
            "INSERT INTO reviews (product_id, user_id, rating, body, created_at) VALUES (?, ?, ?, ?, ?)",
            (product, user, self.rng.choices([1, 2, 3, 4, 5], [1, 1, 2, 4, 5])[0], None, self.today()),
        )

    def edit_review(self):
        review = self.pick("reviews")
        if review is not None:
            self.db.execute("UPDATE reviews SET rating = ? WHERE id = ?", (self.rng.randint(1, 5), review))

    def move_review(self):
        # Filed under the wrong product: it moves between two stats rows.
        review, product = self.pick("reviews"), self.pick("products")
        if review is not None and product is not None:
            self.db.execute("UPDATE reviews SET product_id = ? WHERE id = ?", (product, review))

    def delete_review(self):
        review = self.pick("reviews")
        if review is not None:
            self.db.execute("DELETE FROM reviews WHERE id = ?", (review,))

    # -- trips -------------------------------------------------------------
    def trip(self):
        driver, rider = self.pick("users"), self.pick("users")
        if driver is None or driver == rider:
            return
        km = round(self.rng.uniform(1, 20), 1)
        self.db.execute(
            "INSERT INTO trips (driver_id, rider_id, city, started_on, fare_cents, distance_km) VALUES (?, ?, ?, ?, ?, ?)",
            (driver, rider, self.rng.choice(CITIES), self.today(), int(300 + km * 110), km),
        )

    def reassign_trip(self):
        trip, driver = self.pick("trips"), self.pick("users")
        if trip is not None and driver is not None:
            self.db.execute("UPDATE trips SET driver_id = ? WHERE id = ?", (driver, trip))

    def correct_trip(self):
        trip = self.pick("trips")
        if trip is not None:
            self.db.execute(
                "UPDATE trips SET city = ?, started_on = date(started_on, '-1 day') WHERE id = ?",
                (self.rng.choice(CITIES), trip),
            )

    # -- orders ------------------------------------------------------------
    def order(self):
        customer = self.pick("users")
        if customer is None:
            return
        order = self.next_id("orders")
        self.db.execute(
            "INSERT INTO orders (id, customer_id, ordered_on, status) VALUES (?, ?, ?, 'paid')",
            (order, customer, self.today()),
        )
        for _ in range(self.rng.randint(1, 3)):
            product = self.pick("products")
            if product is not None:
                (price,) = self.db.execute("SELECT price_cents FROM products WHERE id = ?", (product,)).fetchone()
                self.db.execute(
                    "INSERT OR IGNORE INTO order_items (order_id, product_id, quantity, unit_price_cents) VALUES (?, ?, ?, ?)",
                    (order, product, self.rng.randint(1, 3), price),
                )

    def order_status(self):
        order = self.pick("orders", "status = 'paid'")
        if order is not None:
            status = self.rng.choice(["shipped", "shipped", "cancelled"])
            self.db.execute("UPDATE orders SET status = ? WHERE id = ?", (status, order))

    def redate_order(self):
        order = self.pick("orders")
        if order is not None:
            self.db.execute("UPDATE orders SET ordered_on = date(ordered_on, '+1 day') WHERE id = ?", (order,))

    def change_item(self):
        order, product = self.pick("order_items", column="order_id"), self.pick("products")
        if order is None or product is None:
            return
        first = "(SELECT min(product_id) FROM order_items WHERE order_id = ?)"
        if self.rng.random() < 0.5:
            self.db.execute(
                f"UPDATE order_items SET quantity = quantity + 1 WHERE order_id = ? AND product_id = {first}",
                (order, order),
            )
        else:  # a swap to another product: a primary-key change
            self.db.execute(
                f"UPDATE OR IGNORE order_items SET product_id = ? WHERE order_id = ? AND product_id = {first}",
                (product, order, order),
            )

    def delete_order(self):
        order = self.pick("orders")
        if order is not None:
            self.db.execute("DELETE FROM order_items WHERE order_id = ?", (order,))
            self.db.execute("DELETE FROM orders WHERE id = ?", (order,))


ACTIONS = [
    (App.sign_up, 0.8),
    (App.rename, 1),
    (App.delete_user, 0.2),
    (App.post, 3),
    (App.renumber_post, 0.3),
    (App.delete_post, 0.7),
    (App.new_product, 0.5),
    (App.rename_product, 0.5),
    (App.discontinue, 0.2),
    (App.review, 4),
    (App.edit_review, 1),
    (App.move_review, 0.5),
    (App.delete_review, 0.8),
    (App.trip, 3),
    (App.reassign_trip, 0.5),
    (App.correct_trip, 0.5),
    (App.order, 3),
    (App.order_status, 1.5),
    (App.redate_order, 0.4),
    (App.change_item, 1),
    (App.delete_order, 0.3),
]


def main():
    example_writer.run(__doc__, App, ACTIONS, ("users", "posts", "products", "reviews", "trips", "orders", "order_items"))


if __name__ == "__main__":
    main()
