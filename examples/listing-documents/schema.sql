-- The normalized source of truth of a small marketplace: sellers, the
-- products they list, and customer reviews. The application writes only
-- these tables; denorm keeps the product page documents in views.sql up to
-- date. denorm.toml's `[source] init` runs this file once to create app.db
-- when it does not exist.
--
-- Removing a product removes its reviews (ON DELETE CASCADE; the writer
-- turns on PRAGMA foreign_keys, as an application does on every connection).
-- Review timestamps are NOT NULL: "newest first" never meets a NULL.

CREATE TABLE sellers (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL
);

CREATE TABLE products (
    id          INTEGER PRIMARY KEY,
    seller_id   INTEGER NOT NULL REFERENCES sellers (id),
    name        TEXT NOT NULL,
    price_cents INTEGER NOT NULL
);
CREATE INDEX products_seller ON products (seller_id);

CREATE TABLE reviews (
    id          INTEGER PRIMARY KEY,
    product_id  INTEGER NOT NULL REFERENCES products (id) ON DELETE CASCADE,
    author      TEXT NOT NULL,
    rating      INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    title       TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX reviews_product ON reviews (product_id, created_at);

INSERT INTO sellers (id, name) VALUES
    (1, 'Acme Outdoor'), (2, 'Nordic Kitchen'), (3, 'Pixel Gadgets'), (4, 'Green Thumb'), (5, 'Bookish');

INSERT INTO products (id, seller_id, name, price_cents) VALUES
    (1, 1, 'Trail tent 2P', 18900),          (2, 1, 'Down sleeping bag', 22900),
    (3, 1, 'Headlamp 400lm', 3400),           (4, 2, 'Cast iron skillet', 4900),
    (5, 2, 'Chef knife 20cm', 8900),          (6, 2, 'Pour-over kettle', 5900),
    (7, 3, 'USB-C charger 65W', 3900),        (8, 3, 'Noise-cancelling headphones', 24900),
    (9, 3, 'Mechanical keyboard', 12900),     (10, 4, 'Raised garden bed', 9900),
    (11, 4, 'Pruning shears', 2900),          (12, 5, 'Field guide to birds', 2400),
    (13, 5, 'Sourdough handbook', 1900),      (14, 3, 'Webcam 4K', 15900),
    (15, 4, 'Rain barrel 200L', 7900);        -- 15 has no reviews yet

-- 120 reviews over products 1-14, mostly 4-5 stars.
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 120)
INSERT INTO reviews (id, product_id, author, rating, title, created_at)
SELECT i,
       1 + (i * 7) % 14,
       CASE i % 6 WHEN 0 THEN 'Sam' WHEN 1 THEN 'Priya' WHEN 2 THEN 'Lukas' WHEN 3 THEN 'Noor' WHEN 4 THEN 'Kenji'
                  ELSE 'Ines' END,
       CASE WHEN i % 10 < 5 THEN 5 WHEN i % 10 < 8 THEN 4 WHEN i % 10 = 8 THEN 3 WHEN i % 13 = 0 THEN 1 ELSE 2 END,
       CASE WHEN i % 10 < 5 THEN 'Love it' WHEN i % 10 < 8 THEN 'Solid' ELSE 'Disappointed' END,
       printf('2025-01-%02dT%02d:%02d:00Z', 1 + i / 5, (i * 5) % 24, (i * 17) % 60)
FROM n;
