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

-- Subqueries in expressions (issue 11, helper B): EXISTS / NOT EXISTS,
-- IN / NOT IN with NULLs, scalar subqueries correlated or not, in WHERE,
-- the SELECT list and HAVING, nested.

CREATE MATERIALIZED VIEW users_with_posts AS
SELECT u.id, u.name FROM users u
WHERE EXISTS (SELECT 1 FROM posts p WHERE p.author_id = u.id AND p.score > 0);

CREATE MATERIALIZED VIEW products_without_reviews AS
SELECT id, name FROM products p WHERE NOT EXISTS (SELECT * FROM reviews r WHERE r.product_id = p.id);

CREATE MATERIALIZED VIEW unfollowed_author_scores AS
SELECT p.author_id, p.score FROM posts p
WHERE NOT EXISTS (SELECT 1 FROM follows f WHERE f.followee_id = p.author_id);

CREATE MATERIALIZED VIEW post_exists_flags AS
SELECT p.id, EXISTS (SELECT 1 FROM reviews r WHERE r.user_id = p.author_id) AS author_reviews,
       NOT EXISTS (SELECT 1 FROM follows f WHERE f.followee_id = p.author_id AND f.follower_id <> 0) AS unfollowed,
       EXISTS (SELECT 1 FROM products WHERE price > 1) AS any_pricey,
       EXISTS (SELECT r.product_id FROM reviews r WHERE r.user_id = p.author_id
               GROUP BY r.product_id HAVING COUNT(*) > 1) AS reviewed_twice
FROM posts p
WHERE p.score > 2 OR EXISTS (SELECT 1 FROM users u WHERE u.id = p.author_id AND u.karma > 2);

CREATE MATERIALIZED VIEW posts_in_sets AS
SELECT id, author_id IN (SELECT user_id FROM reviews) AS author_reviewed,
       author_id NOT IN (SELECT user_id FROM reviews WHERE rating > 3) AS not_high,
       score IN (SELECT rating FROM reviews r WHERE r.user_id = posts.author_id) AS score_rated,
       score NOT IN (SELECT karma FROM users u WHERE u.id = posts.author_id) AS not_karma,
       author_id IN (SELECT user_id FROM reviews GROUP BY user_id HAVING COUNT(*) > 1) AS frequent,
       score NOT IN (SELECT MAX(rating) FROM reviews r WHERE r.user_id = posts.author_id) AS not_best
FROM posts;

CREATE MATERIALIZED VIEW products_not_reviewed_by_ann AS
SELECT id, name FROM products
WHERE id NOT IN (SELECT product_id FROM reviews r JOIN users u ON u.id = r.user_id WHERE u.name = 'ann');

CREATE MATERIALIZED VIEW followed_authors_posts AS
SELECT id, title FROM posts
WHERE author_id IN (SELECT followee_id FROM follows WHERE follower_id < 4) AND score IS NOT NULL;

CREATE MATERIALIZED VIEW above_average_reviews AS
SELECT r.id, r.rating FROM reviews r
WHERE r.rating > (SELECT AVG(r2.rating) FROM reviews r2 WHERE r2.product_id = r.product_id);

CREATE MATERIALIZED VIEW user_post_counts AS
SELECT u.id, (SELECT COUNT(*) FROM posts p WHERE p.author_id = u.id) AS posts,
       (SELECT COUNT(p.score) + 1 FROM posts p WHERE p.author_id = u.id) AS scored_plus_one,
       (SELECT SUM(score) FROM posts p WHERE p.author_id = u.id AND p.score > 0) AS positive,
       (SELECT MAX(rating) FROM reviews WHERE user_id = u.id HAVING COUNT(*) > 1) AS best_of_several
FROM users u;

CREATE MATERIALIZED VIEW pricey_products AS
SELECT id, name, price - (SELECT AVG(price) FROM products) AS above_mean FROM products
WHERE price > (SELECT AVG(price) FROM products);

CREATE MATERIALIZED VIEW post_author_names AS
SELECT p.id, (SELECT u.name FROM users u WHERE u.id = p.author_id) AS author FROM posts p;

CREATE MATERIALIZED VIEW big_categories AS
SELECT category, SUM(price) AS total FROM products GROUP BY category
HAVING SUM(price) > (SELECT SUM(price) * 0.3 FROM products);

CREATE MATERIALIZED VIEW author_share AS
SELECT author_id, COUNT(*) AS n, COUNT(*) * 100 / (SELECT COUNT(*) FROM posts) AS pct
FROM posts GROUP BY author_id;

CREATE MATERIALIZED VIEW nested_subqueries AS
SELECT u.id FROM users u
WHERE EXISTS (SELECT 1 FROM posts p WHERE p.author_id = u.id
              AND p.id IN (SELECT r.product_id FROM reviews r WHERE r.rating >= 4));

CREATE MATERIALIZED VIEW reviews_with_other_reviewer AS
SELECT r1.id, r1.product_id FROM reviews r1
WHERE EXISTS (SELECT 1 FROM reviews r2 WHERE r2.product_id = r1.product_id AND r2.user_id <> r1.user_id)
  AND NOT EXISTS (SELECT 1 FROM reviews r3
                  WHERE r3.product_id = r1.product_id AND r3.user_id <> r1.user_id AND r3.rating > r1.rating);

CREATE MATERIALIZED VIEW posts_outer_conditions AS
SELECT p.id, EXISTS (SELECT 1 FROM follows f WHERE p.score > 1) AS scored_and_follows,
       NOT EXISTS (SELECT 1 FROM users u WHERE u.karma > p.score OR p.score IS NULL) AS top_score,
       EXISTS (SELECT 1 FROM posts q WHERE q.author_id = p.author_id AND q.title = p.title AND q.id <> p.id) AS same_title
FROM posts p;

CREATE MATERIALIZED VIEW author_groups_correlated AS
SELECT p.author_id, COUNT(*) AS n,
       (SELECT u.name FROM users u WHERE u.id = p.author_id) AS author,
       (SELECT COUNT(*) FROM reviews r WHERE r.user_id = p.author_id) AS reviews,
       EXISTS (SELECT 1 FROM follows f WHERE f.followee_id = p.author_id) AS followed,
       COUNT(*) IN (SELECT rating FROM reviews) AS count_is_a_rating
FROM posts p GROUP BY p.author_id
HAVING COUNT(*) >= (SELECT COUNT(*) FROM follows f WHERE f.follower_id = p.author_id);

CREATE MATERIALIZED VIEW previous_post_scores AS
SELECT p.id,
       (SELECT MAX(q.created_at) FROM posts q
        WHERE q.author_id = p.author_id AND q.created_at < p.created_at) AS previous_at,
       (SELECT COUNT(*) FROM reviews r WHERE r.rating > p.score) AS better_reviews,
       (SELECT SUM(r.helpful) FROM reviews r WHERE p.score > 2) AS helpful_if_scored,
       (SELECT COUNT(*) + 1 FROM posts q WHERE q.author_id = p.author_id AND q.score > p.score
        HAVING COUNT(*) < 3) AS rank_if_top3
FROM posts p;

CREATE MATERIALIZED VIEW latest_per_user AS
SELECT u.id,
       (SELECT p.title FROM posts p WHERE p.author_id = u.id ORDER BY p.created_at DESC, p.id DESC LIMIT 1) AS latest_title,
       (SELECT r.rating FROM reviews r WHERE r.user_id = u.id ORDER BY r.helpful, r.id LIMIT 1) AS least_helpful_rating,
       (SELECT name FROM products ORDER BY price DESC, id LIMIT 1) AS priciest,
       EXISTS (SELECT 1 FROM follows f WHERE f.follower_id = u.id ORDER BY f.id LIMIT 1) AS follows_someone
FROM users u;

CREATE MATERIALIZED VIEW posts_in_correlated_ranges AS
SELECT p.id,
       p.author_id IN (SELECT r.user_id FROM reviews r WHERE r.rating > p.score) AS reviewed_above_score,
       p.score NOT IN (SELECT r.rating FROM reviews r WHERE r.user_id <> p.author_id) AS unmatched_by_others
FROM posts p
WHERE p.created_at NOT IN (SELECT q.score FROM posts q WHERE q.id < p.id) OR p.created_at IS NULL;

CREATE MATERIALIZED VIEW derived_with_subqueries AS
SELECT d.author_id, d.n,
       CASE WHEN d.author_id IN (SELECT id FROM users WHERE karma > 0) THEN 'good' ELSE 'other' END AS standing
FROM (SELECT author_id, COUNT(*) AS n FROM posts p
      WHERE EXISTS (SELECT 1 FROM follows f WHERE f.followee_id = p.author_id)
      GROUP BY author_id) AS d
WHERE d.n * 4 > (SELECT COUNT(*) FROM users) OR d.author_id IS NULL;

CREATE MATERIALIZED VIEW two_level_correlation AS
SELECT u.id, u.name FROM users u
WHERE EXISTS (SELECT 1 FROM posts p WHERE p.author_id = u.id
              AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.user_id = u.id AND r.product_id = p.id));

CREATE MATERIALIZED VIEW previous_posts AS
SELECT p.id,
       (SELECT q.title FROM posts q WHERE q.author_id = p.author_id AND q.id < p.id
        ORDER BY q.id DESC LIMIT 1) AS previous_title,
       (SELECT r.rating FROM reviews r WHERE r.rating >= p.score ORDER BY r.rating, r.id LIMIT 1) AS closest_rating_above
FROM posts p;
