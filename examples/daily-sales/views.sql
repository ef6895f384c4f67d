-- Materialized views: the daily sales summary the dashboard shows, instead
-- of aggregating every order on each dashboard load. Cancelled and refunded
-- orders do not count.

-- The summary as the seed's background job produced it: refreshed every
-- hour. Changes are gathered (and consolidated) between refreshes and
-- applied together; readers see the last refresh.
CREATE MATERIALIZED VIEW daily_sales_hourly
  WITH (refresh = '1h')
AS SELECT o.ordered_on AS day,
          COUNT(DISTINCT o.id) AS orders,
          SUM(i.quantity) AS units,
          SUM(i.quantity * i.unit_price_cents) AS revenue_cents
   FROM orders o
   JOIN order_items i ON i.order_id = o.id
   WHERE o.status IN ('paid', 'shipped')
   GROUP BY o.ordered_on;

-- The same summary maintained on every change, for a live dashboard; the
-- incremental cost per order is the same as the hourly one's.
CREATE MATERIALIZED VIEW daily_sales_live
  WITH (max_staleness = '1s')
AS SELECT o.ordered_on AS day,
          COUNT(DISTINCT o.id) AS orders,
          SUM(i.quantity) AS units,
          SUM(i.quantity * i.unit_price_cents) AS revenue_cents
   FROM orders o
   JOIN order_items i ON i.order_id = o.id
   WHERE o.status IN ('paid', 'shipped')
   GROUP BY o.ordered_on;

-- Revenue per day and category, live: ?day=eq.2025-03-01 is a range of the
-- index. A product moved to another category moves its sales.
CREATE MATERIALIZED VIEW daily_category_sales
  WITH (max_staleness = '1s')
AS SELECT o.ordered_on AS day,
          p.category,
          SUM(i.quantity) AS units,
          SUM(i.quantity * i.unit_price_cents) AS revenue_cents,
          MAX(i.unit_price_cents) AS top_unit_price_cents
   FROM orders o
   JOIN order_items i ON i.order_id = o.id
   JOIN products p ON p.id = i.product_id
   WHERE o.status IN ('paid', 'shipped')
   GROUP BY o.ordered_on, p.category;
