#!/usr/bin/env python3
"""The shop's writes: random but realistic transactions against the
normalized tables of schema.sql, on the application's own connection (denorm
is not in the write path). Orders are placed with a few items, shipped,
cancelled and refunded; items are added, removed, swapped for another
product (a primary-key change) and their quantity changed; support corrects
an order's date (its sales move to another day), renumbers an order (the
items follow by ON UPDATE CASCADE) and deletes test orders (the items go by
ON DELETE CASCADE); products are added, repriced and moved to another
category.

    python3 writer.py app.db [--transactions N] [--seed S]
"""

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))
import example_writer  # noqa: E402  (examples/example_writer.py: the driver all examples share)


CATEGORIES = ["Coffee", "Tea", "Accessories", "Equipment"]
NOUNS = ["Beans 250g", "Moka Pot", "Scale", "Dripper", "Matcha Tin", "Mug", "Tamper", "Cold Brew Jar"]


class App:
    def __init__(self, conn, rng):
        self.db = conn
        self.rng = rng
        self.day = 2

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
        return f"2025-03-{min(self.day, 28):02d}"

    def price(self, product):
        return self.db.execute("SELECT price_cents FROM products WHERE id = ?", (product,)).fetchone()[0]

    # -- orders ------------------------------------------------------------
    def place_order(self):
        order = self.next_id("orders")
        self.db.execute(
            "INSERT INTO orders (id, customer_id, ordered_on, status) VALUES (?, ?, ?, 'paid')",
            (order, self.rng.randint(10, 60), self.today()),
        )
        for _ in range(self.rng.randint(1, 3)):
            self.add_item(order)

    def ship(self):
        order = self.pick("orders", "status = 'paid'")
        if order is not None:
            self.db.execute("UPDATE orders SET status = 'shipped' WHERE id = ?", (order,))

    def cancel(self):
        order = self.pick("orders", "status = 'paid'")
        if order is not None:
            self.db.execute("UPDATE orders SET status = 'cancelled' WHERE id = ?", (order,))

    def refund(self):
        order = self.pick("orders", "status = 'shipped'")
        if order is not None:
            self.db.execute("UPDATE orders SET status = 'refunded' WHERE id = ?", (order,))

    def correct_date(self):
        # The order's sales move from one day's row to another's.
        order = self.pick("orders")
        if order is not None:
            self.db.execute(
                "UPDATE orders SET ordered_on = date(ordered_on, ?) WHERE id = ?",
                (self.rng.choice(["-1 day", "+1 day"]), order),
            )

    def renumber_order(self):
        order = self.pick("orders")
        if order is not None:
            self.db.execute("UPDATE orders SET id = ? WHERE id = ?", (self.next_id("orders"), order))

    def delete_test_order(self):
        # Deleting a referenced row: ON DELETE CASCADE takes its items.
        order = self.pick("orders")
        if order is not None:
            self.db.execute("DELETE FROM orders WHERE id = ?", (order,))

    # -- items -------------------------------------------------------------
    def add_item(self, order=None):
        order = order or self.pick("orders", "status = 'paid'")
        product = self.pick("products")
        if order is None or product is None:
            return
        self.db.execute(
            "INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (order_id, product_id) DO UPDATE SET quantity = quantity + excluded.quantity",
            (order, product, self.rng.randint(1, 4), self.price(product)),
        )

    def remove_item(self):
        order = self.pick("order_items", column="order_id")
        if order is not None:
            self.db.execute(
                "DELETE FROM order_items WHERE order_id = ? AND product_id ="
                " (SELECT max(product_id) FROM order_items WHERE order_id = ?)",
                (order, order),
            )

    def change_quantity(self):
        order = self.pick("order_items", column="order_id")
        if order is not None:
            self.db.execute(
                "UPDATE order_items SET quantity = ? WHERE order_id = ? AND product_id ="
                " (SELECT min(product_id) FROM order_items WHERE order_id = ?)",
                (self.rng.randint(1, 5), order, order),
            )

    def swap_product(self):
        # A primary-key change of order_items: the customer swaps an item.
        order, product = self.pick("order_items", column="order_id"), self.pick("products")
        if order is None or product is None:
            return
        self.db.execute(
            "UPDATE OR IGNORE order_items SET product_id = ?, unit_price_cents = ? WHERE order_id = ? AND product_id ="
            " (SELECT min(product_id) FROM order_items WHERE order_id = ?)",
            (product, self.price(product), order, order),
        )

    # -- products ----------------------------------------------------------
    def new_product(self):
        self.db.execute(
            "INSERT INTO products (id, name, category, price_cents) VALUES (?, ?, ?, ?)",
            (self.next_id("products"), self.rng.choice(NOUNS), self.rng.choice(CATEGORIES), self.rng.randrange(300, 9000)),
        )

    def reprice(self):
        # Only future orders pay the new price; no view reads price_cents.
        product = self.pick("products")
        if product is not None:
            self.db.execute("UPDATE products SET price_cents = ? WHERE id = ?", (self.rng.randrange(300, 9000), product))

    def recategorize(self):
        product = self.pick("products")
        if product is not None:
            self.db.execute("UPDATE products SET category = ? WHERE id = ?", (self.rng.choice(CATEGORIES), product))


ACTIONS = [
    (App.place_order, 6),
    (App.ship, 3),
    (App.cancel, 1),
    (App.refund, 0.5),
    (App.correct_date, 0.7),
    (App.renumber_order, 0.4),
    (App.delete_test_order, 0.4),
    (App.add_item, 1.5),
    (App.remove_item, 1),
    (App.change_quantity, 1.5),
    (App.swap_product, 0.7),
    (App.new_product, 0.4),
    (App.reprice, 0.5),
    (App.recategorize, 0.4),
]


def main():
    example_writer.run(__doc__, App, ACTIONS, ("products", "orders", "order_items"), foreign_keys=True)


if __name__ == "__main__":
    main()
