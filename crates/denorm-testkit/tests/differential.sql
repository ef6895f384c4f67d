-- Views covering every supported construct, checked against SQLite itself by
-- tests/differential_sqlite.rs. Column names are unaliased on purpose in a
-- few places: the engine must name them as SQLite does.

CREATE MATERIALIZED VIEW post_cards AS
SELECT p.id AS post_id, p.title, u.name AS author_name, u.avatar AS author_avatar
FROM posts p JOIN users u ON u.id = p.author_id;

CREATE MATERIALIZED VIEW posts_with_author AS
SELECT p.*, u.name AS author_name
FROM posts p LEFT JOIN users u ON u.id = p.author_id;

CREATE MATERIALIZED VIEW product_stats WITH (key = 'product_id', max_staleness = '1s') AS
SELECT p.id AS product_id, p.name, COUNT(r.id) AS review_count, AVG(r.rating) AS avg_rating,
       SUM(r.rating) AS rating_sum, MIN(r.rating) AS min_rating, MAX(r.helpful) AS max_helpful,
       SUM(r.helpful) AS helpful_sum
FROM products p LEFT OUTER JOIN reviews r ON r.product_id = p.id
GROUP BY p.id, p.name;

CREATE MATERIALIZED VIEW rating_histogram AS
SELECT product_id, rating, COUNT(*) AS n FROM reviews GROUP BY product_id, rating;

CREATE MATERIALIZED VIEW reviewers_per_product AS
SELECT product_id, COUNT(DISTINCT user_id) AS reviewers, COUNT(user_id) AS reviews_with_user
FROM reviews GROUP BY product_id;

CREATE MATERIALIZED VIEW prolific_authors AS
SELECT author_id, COUNT(*) AS posts, SUM(score) AS total
FROM posts GROUP BY author_id HAVING COUNT(*) > 1;

CREATE MATERIALIZED VIEW categories AS
SELECT DISTINCT category FROM products;

CREATE MATERIALIZED VIEW catalog_totals AS
SELECT COUNT(*) AS n, SUM(price) AS total, AVG(price) AS mean, MIN(name) AS first_name, MAX(price)
FROM products;

CREATE MATERIALIZED VIEW post_expressions AS
SELECT id, score + 1 AS s1, score - created_at AS d, score * 2 AS dbl, score / 3 AS third,
       score % 4 AS m, -score AS neg, title || '!' AS shout, score > 2 AS hot,
       score IS NULL AS unknown, score IS NOT NULL AS known, score IN (1, 2, NULL) AS in_list,
       score NOT IN (0, 5) AS not_in_list, score BETWEEN 0 AND 3 AS mid,
       score NOT BETWEEN 0 AND 3 AS outside, title LIKE 'a%' AS starts_a, title NOT LIKE '%A' AS no_a_end,
       CASE WHEN score > 3 THEN 'high' WHEN score > 0 THEN 'mid' ELSE 'low' END AS band,
       CASE score WHEN 1 THEN 'one' WHEN 2 THEN 'two' END AS word,
       COALESCE(score, created_at, -1) AS score_or, NULLIF(score, 0) AS nz, ABS(score) AS mag,
       LOWER(title) AS lt, UPPER(title) AS ut, LENGTH(title) AS len,
       CAST(score AS REAL) / 2 AS half, CAST(created_at AS TEXT) AS created_text,
       score * 1.5 + created_at AS mixed, score / 0 AS by_zero, score <> created_at AND score >= 0 OR title IS NULL AS logic,
       created_at + 1
FROM posts
WHERE NOT (score = 5) OR score IS NULL;

CREATE MATERIALIZED VIEW review_details AS
SELECT r.id AS review_id, p.name AS product, u.name AS reviewer, r.rating
FROM reviews r
JOIN products p ON p.id = r.product_id
JOIN users u ON u.id = r.user_id AND u.karma > r.rating;

CREATE MATERIALIZED VIEW user_follows AS
SELECT u.id, u.name, f.followee_id
FROM users u LEFT JOIN follows f ON f.follower_id = u.id AND f.followee_id <> u.id;

CREATE MATERIALIZED VIEW home_feed AS
SELECT f.follower_id AS owner_id, p.id AS post_id, p.title, u.name AS author_name
FROM follows f
JOIN posts p ON p.author_id = f.followee_id
JOIN users u ON u.id = p.author_id;

CREATE MATERIALIZED VIEW score_buckets AS
SELECT score % 3 AS bucket, COUNT(*) AS n, SUM(score) * 2 AS double_sum, MAX(title) AS last_title
FROM posts GROUP BY score % 3;

CREATE MATERIALIZED VIEW user_activity AS
SELECT u.id AS user_id, COUNT(p.id) AS posts, COALESCE(SUM(p.score), 0) AS score
FROM users u LEFT JOIN posts p ON p.author_id = u.id
WHERE u.karma IS NOT NULL
GROUP BY u.id;

CREATE MATERIALIZED VIEW daily_scores AS
SELECT created_at / 10 AS day, COUNT(*) AS n, AVG(score) AS avg_score, MIN(title) AS first_title
FROM posts WHERE score >= 0 GROUP BY created_at / 10;

CREATE MATERIALIZED VIEW posts_by_author WITH (key = 'author_id, id') AS
SELECT author_id, id, title FROM posts;

CREATE MATERIALIZED VIEW mutual_follows AS
SELECT a.follower_id AS a, a.followee_id AS b
FROM follows a JOIN follows b ON a.followee_id = b.follower_id AND b.followee_id = a.follower_id;

CREATE MATERIALIZED VIEW pricey_categories AS
SELECT category FROM products GROUP BY category HAVING AVG(price) > 1.0;

CREATE MATERIALIZED VIEW review_grid AS
SELECT r.rating, p.category, COUNT(*) AS n, COUNT(DISTINCT r.user_id) AS users, MAX(p.price) AS top_price
FROM reviews r LEFT JOIN products p ON p.id = r.product_id
WHERE r.rating IS NOT NULL
GROUP BY r.rating, p.category;

CREATE MATERIALIZED VIEW post_count AS
SELECT COUNT(*) AS posts, COUNT(score) AS scored, SUM(score) AS total_score FROM posts WHERE score > 100;

-- Subqueries in FROM (derived tables) and top-k per group.

CREATE MATERIALIZED VIEW ratings_per_product AS
SELECT product_id, COUNT(*) AS ratings
FROM (SELECT product_id, rating FROM reviews GROUP BY product_id, rating) AS h
GROUP BY product_id;

CREATE MATERIALIZED VIEW reviews_of_cheap_products AS
SELECT r.id, r.rating, c.name, c.price
FROM reviews r JOIN (SELECT id, name, price FROM products WHERE price < 1.0) AS c ON c.id = r.product_id;

CREATE MATERIALIZED VIEW top_products AS
SELECT category, product_id, price FROM (
  SELECT category, id AS product_id, price,
         ROW_NUMBER() OVER (PARTITION BY category ORDER BY price DESC, id) AS rn
  FROM products) AS ranked
WHERE rn <= 2;

CREATE MATERIALIZED VIEW top_reviews_ranked AS
SELECT product_id, id, helpful, rn FROM (
  SELECT product_id, id, helpful,
         ROW_NUMBER() OVER (PARTITION BY product_id ORDER BY helpful, rating DESC NULLS FIRST, id DESC) AS rn
  FROM reviews WHERE rating IS NOT NULL) AS r
WHERE rn < 4 AND id > 0;

CREATE MATERIALIZED VIEW best_post_per_author AS
SELECT ranked.author_id, ranked.id, ranked.score, u.name
FROM (SELECT author_id, id, score, ROW_NUMBER() OVER (PARTITION BY author_id ORDER BY score DESC NULLS LAST, id) AS rn
      FROM posts) AS ranked
JOIN users u ON u.id = ranked.author_id
WHERE 1 = ranked.rn;

CREATE MATERIALIZED VIEW newest_posts AS
SELECT id, title, created_at, rn FROM (
  SELECT id, title, created_at, ROW_NUMBER() OVER (ORDER BY created_at DESC, id) AS rn FROM posts) AS p
WHERE rn BETWEEN 1 AND 3;

CREATE MATERIALIZED VIEW third_follow AS
SELECT follower_id, followee_id FROM (
  SELECT follower_id, followee_id, ROW_NUMBER() OVER (PARTITION BY follower_id ORDER BY followee_id, id) AS rn FROM follows) AS f
WHERE rn = 3;

CREATE MATERIALIZED VIEW big_top_k AS
SELECT user_id, id, rn FROM (
  SELECT user_id, id, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY product_id DESC, id) AS rn FROM reviews) AS r
WHERE rn <= 100;

CREATE MATERIALIZED VIEW top_rated_products AS
SELECT category, product_id, reviews, rn FROM (
  SELECT p.category, s.product_id, s.reviews,
         ROW_NUMBER() OVER (PARTITION BY p.category ORDER BY s.reviews DESC, s.product_id) AS rn
  FROM (SELECT product_id, COUNT(*) AS reviews FROM reviews GROUP BY product_id) AS s
  JOIN products p ON p.id = s.product_id) AS ranked
WHERE rn <= 2;

CREATE MATERIALIZED VIEW top_k_counts AS
SELECT category, COUNT(*) AS n, SUM(rn) AS rank_sum FROM (
  SELECT category, id, ROW_NUMBER() OVER (PARTITION BY category ORDER BY name, id) AS rn FROM products) AS r
WHERE rn <= 2
GROUP BY category;

-- Helper E (SQLite's exact semantics): values of every storage class in
-- typed columns, REAL sums with large magnitudes and cancellations,
-- numerically equal keys of different types.

CREATE MATERIALIZED VIEW ledger_sums AS
SELECT acct, COUNT(*) AS n, SUM(amount) AS amount_sum, AVG(amount) AS amount_avg, SUM(qty) AS qty_sum,
       AVG(qty) AS qty_avg, MIN(qty) AS qty_min, MAX(amount) AS amount_max, COUNT(qty) AS qty_count
FROM ledger GROUP BY acct;

CREATE MATERIALIZED VIEW ledger_arithmetic AS
SELECT id, qty / 2 AS half, qty + 1 AS next, -qty AS neg, ABS(qty) AS mag, ABS(amount), qty * amount AS product,
       qty % 3 AS m, amount - qty AS diff, qty > 2 AS big, qty = 7 AS seven
FROM ledger WHERE qty OR amount;

CREATE MATERIALIZED VIEW ledger_distinct_values AS
SELECT DISTINCT CASE WHEN id % 2 = 1 THEN acct ELSE acct * 1.0 END AS v FROM ledger;

CREATE MATERIALIZED VIEW ledger_value_groups AS
SELECT CASE WHEN id % 2 = 1 THEN acct ELSE acct * 1.0 END AS v, COUNT(*) AS n, SUM(amount) AS total
FROM ledger GROUP BY 1;

CREATE MATERIALIZED VIEW raw_groups AS
SELECT raw, COUNT(*) AS n, SUM(acct) AS accts FROM ledger GROUP BY raw;

CREATE MATERIALIZED VIEW raw_distinct AS
SELECT DISTINCT raw FROM ledger;

CREATE MATERIALIZED VIEW raw_expressions AS
SELECT id, raw + 1 AS next, raw * 2 AS dbl, -raw AS neg, ABS(raw) AS mag, raw = 1 AS is_one, raw > 'a' AS after_a,
       raw IS NULL AS missing, CAST(raw AS INTEGER) AS as_int, COALESCE(raw, qty) AS either, raw % 2 AS parity
FROM ledger WHERE raw OR qty;

CREATE MATERIALIZED VIEW raw_stats AS
SELECT acct, MIN(raw) AS low, MAX(raw) AS high, SUM(raw) AS total, AVG(raw) AS mean, COUNT(DISTINCT raw) AS kinds
FROM ledger GROUP BY acct;

CREATE MATERIALIZED VIEW note_texts AS
SELECT id, LENGTH(note) AS len, UPPER(note) AS loud, note || '!' AS shout, note LIKE '1%' AS ones, note = '12' AS twelve
FROM ledger;

CREATE MATERIALIZED VIEW ledger_texts AS
SELECT id, CAST(amount AS TEXT) AS amount_text, amount || ' EUR' AS price, qty || '' AS qty_text, raw || '' AS raw_text,
       LENGTH(CAST(qty AS TEXT)) AS qty_len, UPPER(CAST(amount AS TEXT)) AS loud
FROM ledger;

CREATE MATERIALIZED VIEW note_sums AS
SELECT acct, SUM(note) AS total, AVG(note) AS mean, COUNT(note) AS notes FROM ledger GROUP BY acct;
