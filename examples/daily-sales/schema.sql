-- The normalized source of truth of a shop's orders: products, orders and
-- their line items. The application writes only these tables; denorm keeps
-- the sales summaries in views.sql. denorm.toml's `[source] init` runs this
-- file once to create app.db when it does not exist.
--
-- Deleting an order deletes its items (ON DELETE CASCADE; the writer turns on
-- PRAGMA foreign_keys, as an application does on every connection).

CREATE TABLE products (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    category     TEXT NOT NULL,
    price_cents  INTEGER NOT NULL
);

CREATE TABLE orders (
    id           INTEGER PRIMARY KEY,
    customer_id  INTEGER NOT NULL,
    ordered_on   TEXT NOT NULL,   -- YYYY-MM-DD
    status       TEXT NOT NULL CHECK (status IN ('paid', 'shipped', 'cancelled', 'refunded'))
);
CREATE INDEX orders_day ON orders (ordered_on);

CREATE TABLE order_items (
    order_id          INTEGER NOT NULL REFERENCES orders (id) ON DELETE CASCADE ON UPDATE CASCADE,
    product_id        INTEGER NOT NULL REFERENCES products (id),
    quantity          INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents  INTEGER NOT NULL,   -- the price paid, copied at checkout
    PRIMARY KEY (order_id, product_id)
);

INSERT INTO products (id, name, category, price_cents) VALUES
    (1, 'Espresso Beans 1kg', 'Coffee', 2490),
    (2, 'Filter Papers', 'Accessories', 450),
    (3, 'Hand Grinder', 'Equipment', 8900),
    (4, 'Gooseneck Kettle', 'Equipment', 6400);

INSERT INTO orders (id, customer_id, ordered_on, status) VALUES
    (1, 10, '2025-03-01', 'shipped'),
    (2, 11, '2025-03-01', 'paid'),
    (3, 12, '2025-03-02', 'cancelled'),
    (4, 10, '2025-03-02', 'paid');

INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) VALUES
    (1, 1, 2, 2490),
    (1, 2, 1, 450),
    (2, 3, 1, 8900),
    (3, 4, 1, 6400),
    (4, 1, 1, 2490),
    (4, 2, 3, 450);
