-- The normalized source of truth of a small marketplace with a social side.
-- The application writes only these tables; denorm derives the read models in
-- views.sql from them. denorm.toml's `[source] init` runs this file once to
-- create app.db when it does not exist.

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    avatar_url  TEXT,
    created_at  TEXT NOT NULL
);

CREATE TABLE posts (
    id          INTEGER PRIMARY KEY,
    author_id   INTEGER NOT NULL REFERENCES users (id),
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE products (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    category     TEXT NOT NULL,
    price_cents  INTEGER NOT NULL
);

CREATE TABLE reviews (
    id          INTEGER PRIMARY KEY,
    product_id  INTEGER NOT NULL REFERENCES products (id),
    user_id     INTEGER NOT NULL REFERENCES users (id),
    rating      INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    body        TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX reviews_product ON reviews (product_id);

CREATE TABLE trips (
    id           INTEGER PRIMARY KEY,
    driver_id    INTEGER NOT NULL REFERENCES users (id),
    rider_id     INTEGER NOT NULL REFERENCES users (id),
    city         TEXT NOT NULL,
    started_on   TEXT NOT NULL,   -- YYYY-MM-DD
    fare_cents   INTEGER NOT NULL,
    distance_km  REAL
);

CREATE TABLE orders (
    id           INTEGER PRIMARY KEY,
    customer_id  INTEGER NOT NULL REFERENCES users (id),
    ordered_on   TEXT NOT NULL,   -- YYYY-MM-DD
    status       TEXT NOT NULL CHECK (status IN ('paid', 'shipped', 'cancelled'))
);

CREATE TABLE order_items (
    order_id          INTEGER NOT NULL REFERENCES orders (id),
    product_id        INTEGER NOT NULL REFERENCES products (id),
    quantity          INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents  INTEGER NOT NULL,
    PRIMARY KEY (order_id, product_id)
);

-- A little data so that every view has rows from the start.
INSERT INTO users (id, name, avatar_url, created_at) VALUES
    (1, 'Sarah Chen', 'https://cdn.example.com/sarah.jpg', '2025-01-02'),
    (2, 'Omar Haddad', NULL, '2025-01-05'),
    (3, 'Ines Duarte', 'https://cdn.example.com/ines.jpg', '2025-01-09');

INSERT INTO posts (id, author_id, body, created_at) VALUES
    (1, 1, 'Just shipped v2.0', '2025-01-15T09:30:00Z'),
    (2, 2, 'Keyboard review is up', '2025-01-15T11:02:00Z'),
    (3, 1, 'Thanks for all the feedback!', '2025-01-16T08:12:00Z');

INSERT INTO products (id, name, category, price_cents) VALUES
    (441, 'Mechanical Keyboard TKL', 'Electronics', 7999),
    (442, 'Wrist Rest', 'Accessories', 1999),
    (443, 'USB-C Cable', 'Accessories', 999);

INSERT INTO reviews (id, product_id, user_id, rating, body, created_at) VALUES
    (1, 441, 2, 5, 'Great switches', '2025-01-15'),
    (2, 441, 3, 4, NULL, '2025-01-16'),
    (3, 441, 1, 5, 'Love it', '2025-01-17'),
    (4, 442, 3, 2, 'Too soft', '2025-01-17');

INSERT INTO trips (id, driver_id, rider_id, city, started_on, fare_cents, distance_km) VALUES
    (1, 2, 1, 'Lisbon', '2025-01-15', 1250, 6.2),
    (2, 2, 3, 'Lisbon', '2025-01-15', 830, 3.9),
    (3, 3, 1, 'Porto', '2025-01-16', 1540, 8.0);

INSERT INTO orders (id, customer_id, ordered_on, status) VALUES
    (1, 1, '2025-01-15', 'paid'),
    (2, 3, '2025-01-15', 'shipped'),
    (3, 2, '2025-01-16', 'cancelled');

INSERT INTO order_items (order_id, product_id, quantity, unit_price_cents) VALUES
    (1, 441, 1, 7999),
    (1, 443, 2, 999),
    (2, 442, 1, 1999),
    (3, 441, 1, 7999);
