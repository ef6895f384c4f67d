-- The normalized source of truth of a product catalog with reviews. The
-- application writes only these tables; denorm keeps the read models in
-- views.sql up to date. denorm.toml's `[source] init` runs this file once to
-- create app.db when it does not exist.
--
-- Deleting a product deletes its reviews, and renumbering a product moves its
-- reviews along (ON DELETE/UPDATE CASCADE; the writer turns on
-- PRAGMA foreign_keys, as an application does on every connection).

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL
);

CREATE TABLE products (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    category     TEXT NOT NULL,
    price_cents  INTEGER NOT NULL
);

CREATE TABLE reviews (
    id          INTEGER PRIMARY KEY,
    product_id  INTEGER NOT NULL REFERENCES products (id) ON DELETE CASCADE ON UPDATE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users (id),
    rating      INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    body        TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX reviews_product ON reviews (product_id);

INSERT INTO users (id, name) VALUES
    (1, 'Sarah Chen'), (2, 'Omar Haddad'), (3, 'Ines Duarte'), (4, 'Kenji Sato');

INSERT INTO products (id, name, category, price_cents) VALUES
    (441, 'Mechanical Keyboard TKL', 'Electronics', 7999),
    (442, 'Wrist Rest', 'Accessories', 1999),
    (443, 'USB-C Cable', 'Accessories', 999),
    (444, '27" Monitor', 'Electronics', 24999);

INSERT INTO reviews (id, product_id, user_id, rating, body, created_at) VALUES
    (1, 441, 2, 5, 'Great switches', '2025-01-15'),
    (2, 441, 3, 4, NULL, '2025-01-16'),
    (3, 441, 1, 5, 'Love it', '2025-01-17'),
    (4, 442, 3, 2, 'Too soft', '2025-01-17'),
    (5, 443, 4, 3, 'Does the job', '2025-01-18');
