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

-- Function library (issue 11, helper D): every scalar function of the
-- SQLite table over the test columns (NULLs, negatives, case, doubles).

CREATE MATERIALIZED VIEW post_text_functions AS
SELECT id, substr(title, 2, 3) AS s1, substr(title, -2) AS s2, substr(title, 0, 2) AS s3,
       substr(title, score, created_at % 5 - 2) AS s4, substring(title, 2) AS s5,
       trim(title, 'aA') AS t1, ltrim('  ' || title) AS t2, rtrim(title, 'a') AS t3, trim(title) AS t4,
       replace(title, 'a', 'XY') AS r1, instr(title, 'a') AS i1, instr(title, title) AS i2,
       ifnull(score, -1) AS f1, iif(score > 2, 'hi', 'lo') AS f2, iif(score, title, NULL) AS f3,
       min(score, created_at) AS mn, max(score, created_at, 5) AS mx, min(title, 'b') AS mt,
       typeof(score) AS ty, typeof(score / 2.0) AS ty2, hex(title) AS h, hex(score) AS h2,
       quote(title) AS q, quote(score) AS q2,
       printf('%5d|%-6s|%.2f|%x', score, title, score / 4.0, created_at) AS p, format('%s-%03d', title, score) AS p2,
       char(65 + score, 98) AS c, unicode(title) AS u, sign(score - 2) AS sg, length(score) AS ls,
       round(score / 3.0, 1) AS r2, round(score * 0.5) AS r3,
       upper(substr(title, 1, 1)) || lower(substr(title, 2)) AS cap
FROM posts;

CREATE MATERIALIZED VIEW product_number_functions AS
SELECT p.id, round(p.price, 1) AS r1, round(p.price) AS r0, sign(p.price) AS s, printf('%.1f|%+d', p.price, p.price) AS pf,
       quote(p.price) AS q, typeof(p.price) AS t, max(p.price, 0.5) AS mx, min(p.price, r.helpful) AS mn,
       round(r.helpful * p.price, 2) AS prod, hex(p.price) AS h, substr(p.name, p.price) AS sp
FROM products p LEFT JOIN reviews r ON r.product_id = p.id;

CREATE MATERIALIZED VIEW post_dates AS
SELECT id, date(1700000000 + created_at * 86400 * 7, 'unixepoch') AS d1,
       datetime(2460000.5 + created_at / 3.0) AS d2,
       strftime('%Y-%m %j %W %w', 1700000000 + created_at * 1000003, 'unixepoch') AS d3,
       date('2024-01-31', '+' || CAST(score AS TEXT) || ' months') AS d4,
       julianday(date('2000-02-29', CAST(created_at AS TEXT) || ' years')) AS d5,
       unixepoch('2024-03-10', 'start of month', '+' || CAST(created_at AS TEXT) || ' hours') AS d6,
       time(created_at * 3600.5, 'unixepoch') AS d7,
       date(title) AS d8,
       date('1995-03-15', 'weekday ' || CAST(score AS TEXT), 'start of year') AS d9
FROM posts;

CREATE MATERIALIZED VIEW posts_per_year AS
SELECT strftime('%Y', date('1992-01-01', '+' || CAST(created_at * 97 AS TEXT) || ' days')) AS o_year,
       COUNT(*) AS n, SUM(score) AS total
FROM posts
GROUP BY strftime('%Y', date('1992-01-01', '+' || CAST(created_at * 97 AS TEXT) || ' days'));

CREATE MATERIALIZED VIEW users_by_initial AS
SELECT substr(name, 1, 1) AS initial, COUNT(*) AS n, MAX(karma) AS best
FROM users
WHERE instr(lower(name), 'n') > 0 OR karma > 2
GROUP BY substr(name, 1, 1);

CREATE MATERIALIZED VIEW review_aggregate_library AS
SELECT product_id, total(rating) AS t, total(helpful) AS th, SUM(DISTINCT rating) AS sd, AVG(DISTINCT rating) AS ad,
       SUM(DISTINCT helpful) AS sdh, AVG(DISTINCT helpful) AS adh, COUNT(*) FILTER (WHERE rating > 3) AS good,
       SUM(helpful) FILTER (WHERE user_id IS NOT NULL) AS sf, MAX(rating) FILTER (WHERE helpful > 0) AS mf,
       COUNT(DISTINCT user_id) FILTER (WHERE rating >= 2) AS cdf, MIN(DISTINCT rating) AS mnd,
       group_concat(rating, '-' ORDER BY id) AS ratings, group_concat(helpful ORDER BY id DESC) AS helpfuls,
       string_agg(CAST(user_id AS TEXT), ', ' ORDER BY user_id DESC, id) AS users,
       group_concat(user_id, ';' ORDER BY id) FILTER (WHERE rating > 2) AS gf
FROM reviews
GROUP BY product_id;

CREATE MATERIALIZED VIEW user_names_concat AS
SELECT group_concat(name) AS names, total(karma) AS karma_total, COUNT(*) FILTER (WHERE avatar IS NULL) AS no_avatar,
       AVG(DISTINCT karma) AS distinct_karma
FROM users;

CREATE MATERIALIZED VIEW post_branches AS
SELECT id, iif(score > 4, 'high', score > 0, 'mid', score IS NULL, 'none', 'low') AS band,
       iif(score < 0, -score, created_at > 20, created_at) AS picked, if(title IS NULL, 'untitled', title) AS t,
       concat(title, '#', score, NULL, score / 2.0) AS c, concat_ws(' / ', title, score, created_at) AS cw
FROM posts;

CREATE MATERIALIZED VIEW product_json_filtered AS
SELECT product_id, json_group_array(rating ORDER BY id) FILTER (WHERE helpful > 0) AS helpful_ratings,
       json_group_object(CAST(id AS TEXT), rating) FILTER (WHERE rating >= 3) AS good
FROM reviews
GROUP BY product_id;

CREATE MATERIALIZED VIEW distinct_titles AS
SELECT author_id, group_concat(DISTINCT title) AS titles, COUNT(DISTINCT title) AS n
FROM posts
GROUP BY author_id;

CREATE MATERIALIZED VIEW post_json_access AS
SELECT id, json_object('s', score, 't', title, 'l', json_array(score, created_at)) ->> 's' AS s,
       json_object('t', title) -> '$.t' AS t_json,
       json_extract(json_array(score, title, created_at / 4.0), '$[2]') AS third,
       (json_object('l', json_array(score, created_at)) -> 'l') ->> 1 AS second,
       json_object('n', score) ->> 'missing' AS missing
FROM posts;
