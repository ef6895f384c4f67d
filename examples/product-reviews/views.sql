-- Pre-computed aggregates: the review stats a product page shows, kept on
-- the product instead of aggregating the reviews on every page load.

-- Review count, average, the running sum the average comes from, and the
-- star histogram, one row per product. LEFT JOIN keeps products without
-- reviews (count 0, average NULL). A key lookup beyond the one-second budget
-- is answered by SQLite running this query (on_stale = 'fallback').
CREATE MATERIALIZED VIEW product_review_stats
  WITH (key = 'product_id', max_staleness = '1s', on_stale = 'fallback')
AS SELECT p.id AS product_id,
          p.name,
          p.category,
          COUNT(r.id) AS review_count,
          SUM(r.rating) AS rating_sum,
          AVG(r.rating) AS avg_rating,
          SUM(CASE WHEN r.rating = 5 THEN 1 ELSE 0 END) AS five_star,
          SUM(CASE WHEN r.rating = 4 THEN 1 ELSE 0 END) AS four_star,
          SUM(CASE WHEN r.rating = 3 THEN 1 ELSE 0 END) AS three_star,
          SUM(CASE WHEN r.rating = 2 THEN 1 ELSE 0 END) AS two_star,
          SUM(CASE WHEN r.rating = 1 THEN 1 ELSE 0 END) AS one_star
   FROM products p
   LEFT JOIN reviews r ON r.product_id = p.id
   GROUP BY p.id, p.name, p.category;

-- The same histogram as rows, one per product and star rating that has
-- reviews: `?product_id=eq.441` is a range of the view's index.
CREATE MATERIALIZED VIEW product_rating_histogram
  WITH (max_staleness = '1s')
AS SELECT product_id, rating, COUNT(*) AS reviews
   FROM reviews
   GROUP BY product_id, rating;

-- Stats per category for the category landing page: moving a product to
-- another category moves all its reviews between two rows.
CREATE MATERIALIZED VIEW category_review_stats
  WITH (max_staleness = '5s')
AS SELECT p.category,
          COUNT(DISTINCT p.id) AS reviewed_products,
          COUNT(*) AS review_count,
          AVG(r.rating) AS avg_rating,
          MIN(r.rating) AS lowest_rating
   FROM reviews r
   JOIN products p ON p.id = r.product_id
   GROUP BY p.category;
