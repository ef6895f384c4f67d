-- What billing reads: one row per customer with the amount owed, and the
-- usage per day for the finance dashboard. The application reads
-- billing_totals from its own database (the sink), never joining or
-- summing usage_events itself.

CREATE MATERIALIZED VIEW billing_totals WITH (max_staleness = '2s') AS
  SELECT c.id AS customer_id, c.name, c.plan,
         COUNT(e.id) AS events,
         COALESCE(SUM(e.units * e.unit_price_cents), 0) AS amount_cents
  FROM customers c
  LEFT JOIN usage_events e ON e.customer_id = c.id
  GROUP BY c.id, c.name, c.plan;

CREATE MATERIALIZED VIEW daily_usage AS
  SELECT billed_on, COUNT(*) AS events, SUM(units) AS units
  FROM usage_events
  GROUP BY billed_on;
