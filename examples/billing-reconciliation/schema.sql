-- The normalized source of truth of a metered-billing service: customers
-- and the usage events they are billed for. The application writes only
-- these tables; denorm keeps the billing totals (views.sql) and their copy
-- in the application's own `billing_totals` table (the [[sink]] in
-- denorm.toml) in step with them.
-- denorm.toml's `[source] init` runs this file once to create app.db when it
-- does not exist.

CREATE TABLE customers (
    id     INTEGER PRIMARY KEY,
    name   TEXT NOT NULL,
    plan   TEXT NOT NULL CHECK (plan IN ('free', 'team', 'enterprise'))
);

CREATE TABLE usage_events (
    id                INTEGER PRIMARY KEY,
    customer_id       INTEGER NOT NULL REFERENCES customers (id),
    units             INTEGER NOT NULL,
    unit_price_cents  INTEGER NOT NULL,
    billed_on         TEXT NOT NULL          -- YYYY-MM-DD
);

INSERT INTO customers (id, name, plan) VALUES
    (1, 'Acme', 'enterprise'), (2, 'Globex', 'team'), (3, 'Initech', 'team'),
    (4, 'Umbrella', 'free'), (5, 'Hooli', 'enterprise');

WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200)
INSERT INTO usage_events (id, customer_id, units, unit_price_cents, billed_on)
SELECT i, i % 5 + 1, 1 + i % 9, 10 + (i % 3) * 5, '2026-12-0' || (1 + i % 5) FROM n;
