-- The product page as one document: everything the listing page renders,
-- read with one key lookup instead of a join with sellers and an aggregate
-- over reviews on every page view (the seed's 400 ms → 2 ms).
--
-- - seller_name is a copy of sellers.name: renaming a seller rewrites the
--   pages of that seller's products;
-- - review_count and avg_rating are COUNT/AVG over the product's reviews,
--   updated in O(1) per review;
-- - newest_reviews embeds the 3 newest reviews as JSON objects. `LIMIT 3`
--   inside the aggregate is a denorm extension (SQLite and PostgreSQL do not
--   run it): each review is rendered once into an ordered set, so a new
--   review costs O(log n) and re-emits 3 elements, never a re-read of the
--   product's reviews. A product without reviews embeds `[null]` (the LEFT
--   JOIN's row of NULLs; json_group_array keeps NULL elements);
-- - rating_histogram is {"1": n1, …, "5": n5}, every rating present.
CREATE MATERIALIZED VIEW product_pages AS SELECT p.id AS product_id,
          p.name,
          p.price_cents,
          s.id AS seller_id,
          s.name AS seller_name,
          COUNT(r.id) AS review_count,
          AVG(r.rating) AS avg_rating,
          json_group_array(
            CASE WHEN r.id IS NULL THEN NULL
                 ELSE json_object('id', r.id, 'author', r.author, 'rating', r.rating, 'title', r.title,
                                  'created_at', r.created_at) END
            ORDER BY r.created_at DESC, r.id DESC LIMIT 3) AS newest_reviews,
          json_object('1', SUM(CASE WHEN r.rating = 1 THEN 1 ELSE 0 END),
                      '2', SUM(CASE WHEN r.rating = 2 THEN 1 ELSE 0 END),
                      '3', SUM(CASE WHEN r.rating = 3 THEN 1 ELSE 0 END),
                      '4', SUM(CASE WHEN r.rating = 4 THEN 1 ELSE 0 END),
                      '5', SUM(CASE WHEN r.rating = 5 THEN 1 ELSE 0 END)) AS rating_histogram
   FROM products p
   JOIN sellers s ON s.id = p.seller_id
   LEFT JOIN reviews r ON r.product_id = p.id
   GROUP BY p.id, p.name, p.price_cents, s.id, s.name;

-- The sparse histogram as the seed writes it, {"1": 12, "5": 40}: a
-- json_group_object over a derived table of review counts per rating. Only
-- ratings that occur are members; a product's row disappears with its last
-- review.
CREATE MATERIALIZED VIEW rating_histograms
  WITH (key = 'product_id')
AS SELECT product_id,
          json_group_object(rating, n) AS histogram,
          SUM(n) AS reviews
   FROM (SELECT product_id, rating, COUNT(*) AS n FROM reviews GROUP BY product_id, rating) AS h
   GROUP BY product_id;
