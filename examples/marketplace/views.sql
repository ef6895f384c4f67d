-- The read models of the marketplace, one per technique of the seed documents.
-- Each is a SELECT over schema.sql's normalized tables that denorm keeps up to
-- date incrementally. `denorm check` shows, per view, what triggers an update,
-- how it propagates and its staleness budget.

-- Duplicate fields: a post carries its author's name and avatar, so the feed
-- needs no join at read time. Renaming a user rewrites that user's post cards.
CREATE MATERIALIZED VIEW post_cards
  WITH (max_staleness = '1s')
AS SELECT p.id AS post_id,
          p.body,
          p.created_at,
          u.id AS author_id,
          u.name AS author_name,
          u.avatar_url AS author_avatar
   FROM posts p
   JOIN users u ON u.id = p.author_id;

-- Pre-computed aggregates: review count, average rating and the star
-- distribution on the product itself. LEFT JOIN keeps products without
-- reviews (count 0, average NULL).
CREATE MATERIALIZED VIEW product_stats
  WITH (key = 'product_id', max_staleness = '1s')
AS SELECT p.id AS product_id,
          p.name,
          COUNT(r.id) AS review_count,
          AVG(r.rating) AS avg_rating,
          SUM(CASE WHEN r.rating = 5 THEN 1 ELSE 0 END) AS five_star,
          SUM(CASE WHEN r.rating = 4 THEN 1 ELSE 0 END) AS four_star,
          SUM(CASE WHEN r.rating = 3 THEN 1 ELSE 0 END) AS three_star,
          SUM(CASE WHEN r.rating = 2 THEN 1 ELSE 0 END) AS two_star,
          SUM(CASE WHEN r.rating = 1 THEN 1 ELSE 0 END) AS one_star
   FROM products p
   LEFT JOIN reviews r ON r.product_id = p.id
   GROUP BY p.id, p.name;

-- The rating histogram as rows: one per product and star rating.
CREATE MATERIALIZED VIEW product_rating_histogram
AS SELECT product_id, rating, COUNT(*) AS reviews
   FROM reviews
   GROUP BY product_id, rating;

-- Duplicate tables per access pattern: the same trips, keyed for two
-- queries ("a driver's trips" and "a city's trips on a day").
CREATE MATERIALIZED VIEW trips_by_driver
  WITH (key = 'driver_id, trip_id')
AS SELECT t.driver_id, t.id AS trip_id, t.started_on, t.city, t.fare_cents
   FROM trips t;

CREATE MATERIALIZED VIEW trips_by_city_date
  WITH (key = 'city, started_on, trip_id')
AS SELECT t.city, t.started_on, t.id AS trip_id, t.driver_id, t.fare_cents, t.distance_km
   FROM trips t;

-- Materialized view: the daily sales summary, with an hour of staleness
-- allowed. Cancelled orders do not count.
CREATE MATERIALIZED VIEW daily_sales
  WITH (max_staleness = '1h')
AS SELECT o.ordered_on AS day,
          COUNT(DISTINCT o.id) AS orders,
          SUM(i.quantity) AS units,
          SUM(i.quantity * i.unit_price_cents) AS revenue_cents,
          MAX(i.unit_price_cents) AS top_unit_price_cents
   FROM orders o
   JOIN order_items i ON i.order_id = o.id
   WHERE o.status <> 'cancelled'
   GROUP BY o.ordered_on;
