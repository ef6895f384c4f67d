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

-- Query level (issue 11, helper C): top-N with and without OFFSET, ORDER BY
-- as the read order, UNION/UNION ALL/EXCEPT/INTERSECT (NULLs, duplicates,
-- SQLite's left-to-right precedence), WITH used twice and shadowing a
-- table, constant views. Each top-N ends its ORDER BY with a unique column,
-- so that the source and the engine keep the same rows at the boundary.

CREATE MATERIALIZED VIEW top_scored_posts AS
SELECT id, title, score FROM posts ORDER BY score DESC, id LIMIT 4;

CREATE MATERIALIZED VIEW top_posts_page_two AS
SELECT id AS post, score FROM posts ORDER BY score, post DESC LIMIT 3 OFFSET 2;

CREATE MATERIALIZED VIEW top_authors_by_hidden_count AS
SELECT author_id FROM posts GROUP BY author_id ORDER BY COUNT(*) DESC, author_id LIMIT 3;

CREATE MATERIALIZED VIEW top_titles_by_expression AS
SELECT id, title FROM posts ORDER BY LENGTH(title) DESC, 1 LIMIT 3;

CREATE MATERIALIZED VIEW posts_in_order AS
SELECT id, title, score FROM posts ORDER BY score DESC, title;

CREATE MATERIALIZED VIEW names_of_anything AS
SELECT name FROM users UNION SELECT name FROM products;

CREATE MATERIALIZED VIEW all_names AS
SELECT id, name FROM users UNION ALL SELECT id, name FROM products UNION ALL SELECT author_id, title FROM posts;

CREATE MATERIALIZED VIEW silent_users AS
SELECT id FROM users EXCEPT SELECT author_id FROM posts;

CREATE MATERIALIZED VIEW reviewing_authors AS
SELECT user_id FROM reviews INTERSECT SELECT author_id FROM posts;

CREATE MATERIALIZED VIEW set_chain AS
SELECT author_id, score FROM posts UNION SELECT user_id, rating FROM reviews
EXCEPT SELECT follower_id, followee_id FROM follows INTERSECT SELECT product_id, rating FROM reviews;

CREATE MATERIALIZED VIEW top_of_union AS
SELECT id, name AS label FROM users UNION ALL SELECT id, title FROM posts ORDER BY label DESC, id LIMIT 5;

CREATE MATERIALIZED VIEW author_counts_twice AS
WITH counts AS (SELECT author_id, COUNT(*) AS n FROM posts GROUP BY author_id)
SELECT a.author_id, a.n, b.n AS again FROM counts a JOIN counts b ON b.author_id = a.author_id;

CREATE MATERIALIZED VIEW good_reviews_per_product AS
WITH good AS (SELECT id, product_id FROM reviews WHERE rating >= 3),
     products AS (SELECT product_id, COUNT(*) AS n FROM good GROUP BY product_id)
SELECT product_id, n FROM products;

CREATE MATERIALIZED VIEW newest_follows AS
SELECT t.follower_id, t.followee_id FROM (SELECT follower_id, followee_id, id FROM follows ORDER BY id DESC LIMIT 3) AS t;

CREATE MATERIALIZED VIEW constants AS
SELECT 1 AS one, 'x' AS s, 2.5 AS f;

CREATE MATERIALIZED VIEW users_and_nobody AS
SELECT id, name FROM users UNION ALL SELECT 0, 'nobody';
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
-- Joins (helper A): comma FROM with join keys in WHERE, an OR with a common
-- equality, CROSS JOIN and non-equi joins, USING, NATURAL, parenthesized,
-- RIGHT and FULL joins (NULL keys included), join order chosen by the planner.

CREATE MATERIALIZED VIEW comma_three_way AS
SELECT r.id AS review_id, p.name AS product, u.name AS reviewer, r.rating
FROM reviews r, users u, products p
WHERE u.id = r.user_id AND p.id = r.product_id AND r.rating >= 2 AND u.karma > r.rating;

CREATE MATERIALIZED VIEW comma_reordered AS
SELECT f.follower_id, p.id AS post_id, u.name
FROM users u, follows f, posts p
WHERE p.author_id = f.followee_id AND u.id = p.author_id;

CREATE MATERIALIZED VIEW or_common_key AS
SELECT r.id, p.name, r.rating
FROM reviews r, products p
WHERE (p.id = r.product_id AND p.category = 'a' AND r.rating >= 3)
   OR (r.product_id = p.id AND p.price < 1.0 AND r.helpful IS NOT NULL)
   OR (p.id = r.product_id AND r.rating = 1);

CREATE MATERIALIZED VIEW comma_and_join AS
SELECT p.id AS post_id, u.name, f.follower_id
FROM posts p JOIN users u ON u.id = p.author_id, follows f
WHERE f.followee_id = u.id AND f.follower_id <> p.author_id;

CREATE MATERIALIZED VIEW comma_and_left_join AS
SELECT u.id AS user_id, p.id AS post_id, f.follower_id
FROM users u LEFT JOIN posts p ON p.author_id = u.id, follows f
WHERE f.followee_id = u.id AND (p.score IS NULL OR p.score > 0);

CREATE MATERIALIZED VIEW cross_join_residual AS
SELECT u.id AS user_id, p.id AS product_id
FROM users u CROSS JOIN products p
WHERE p.price > u.karma;

CREATE MATERIALIZED VIEW non_equi_join AS
SELECT a.id AS a_id, b.id AS b_id
FROM posts a JOIN posts b ON a.score < b.score AND a.author_id = b.created_at % 5;

CREATE MATERIALIZED VIEW comma_product_count AS
SELECT COUNT(*) AS pairs, SUM(u.karma) AS karma FROM users u, follows f;

CREATE MATERIALIZED VIEW left_join_no_equality AS
SELECT u.id AS user_id, r.id AS review_id
FROM users u LEFT JOIN reviews r ON r.rating > u.karma AND r.rating < 3;

CREATE MATERIALIZED VIEW using_join AS
SELECT * FROM posts JOIN (SELECT id, name, karma FROM users) AS u USING (id);

CREATE MATERIALIZED VIEW left_using_join AS
SELECT id, title, karma, u.id AS uid
FROM posts p LEFT JOIN users u USING (id);

CREATE MATERIALIZED VIEW natural_join AS
SELECT * FROM (SELECT id AS follower_id, name FROM users) AS u NATURAL JOIN follows;

CREATE MATERIALIZED VIEW parenthesized_join AS
SELECT p.id AS post_id, u.name, f.follower_id
FROM posts p LEFT JOIN (users u JOIN follows f ON f.followee_id = u.id) ON u.id = p.author_id;

CREATE MATERIALIZED VIEW right_join AS
SELECT p.id AS post_id, p.title, u.id AS user_id, u.name
FROM posts p RIGHT JOIN users u ON u.id = p.author_id AND p.score > 0;

CREATE MATERIALIZED VIEW right_using_join AS
SELECT * FROM reviews RIGHT JOIN (SELECT id, name FROM products) AS p USING (id);

CREATE MATERIALIZED VIEW full_join AS
SELECT r.id AS review_id, r.rating, p.id AS product_id, p.name
FROM reviews r FULL OUTER JOIN products p ON p.id = r.product_id;

CREATE MATERIALIZED VIEW full_join_residual_grouped AS
SELECT p.category, COUNT(r.id) AS reviews, COUNT(*) AS n, SUM(r.rating) AS ratings
FROM reviews r FULL JOIN products p ON p.id = r.product_id AND r.helpful > 0
GROUP BY p.category;

CREATE MATERIALIZED VIEW full_join_where AS
SELECT a.id AS a_id, b.id AS b_id
FROM posts a FULL JOIN users b ON b.karma = a.score
WHERE a.id IS NULL OR b.id IS NULL OR a.title <> b.name;

CREATE MATERIALIZED VIEW chained_using AS
SELECT * FROM (SELECT id, name FROM users) AS a
RIGHT JOIN (SELECT id, karma FROM users WHERE karma > 0) AS b USING (id)
JOIN (SELECT author_id AS id, title FROM posts) AS c USING (id);

CREATE MATERIALIZED VIEW users_without_posts AS
SELECT u.id, u.name, f.followee_id
FROM follows f, users u LEFT JOIN posts p ON p.author_id = u.id
WHERE p.id IS NULL AND f.follower_id = u.id;

CREATE MATERIALIZED VIEW right_join_where AS
SELECT u.id AS user_id, p.id AS post_id, r.rating
FROM posts p RIGHT JOIN users u ON u.id = p.author_id, reviews r
WHERE r.user_id = u.id AND (p.score IS NULL OR p.score < r.rating);

-- SQLite joins a comma like any join, left-deep: the items before an outer
-- join are part of its left operand.
CREATE MATERIALIZED VIEW comma_then_right_join AS
SELECT f.id AS follow_id, p.id AS post_id, u.id AS user_id
FROM follows f, posts p RIGHT JOIN users u ON u.id = p.author_id AND u.id = f.follower_id;

CREATE MATERIALIZED VIEW comma_then_left_join_reading_it AS
SELECT f.id AS follow_id, u.id AS user_id, p.id AS post_id
FROM follows f, users u LEFT JOIN posts p ON p.author_id = u.id AND p.score > f.followee_id
WHERE u.id = f.follower_id;

CREATE MATERIALIZED VIEW left_join_without_on AS
SELECT u.id, b.n FROM users u LEFT JOIN (SELECT COUNT(*) AS n FROM posts WHERE score > 5 GROUP BY author_id) AS b;

-- Equalities between expressions are join keys too (each side computed
-- below the join), also when one side reads two tables already joined.
CREATE MATERIALIZED VIEW expression_key_join AS
SELECT r.id AS review_id, p.id AS post_id, u.name
FROM reviews r, posts p, users u
WHERE r.rating + 1 = p.score % 7 AND u.id = r.user_id AND u.karma + p.author_id = r.product_id * 2;

CREATE MATERIALIZED VIEW expression_key_left_join AS
SELECT u.id AS user_id, p.id AS post_id
FROM users u LEFT JOIN posts p ON p.author_id * 2 = u.karma + u.id AND lower(p.title) <> 'beta';

CREATE MATERIALIZED VIEW or_common_filters AS
SELECT r.id, p.name FROM reviews r, products p
WHERE (p.id = r.product_id AND r.rating > 1 AND p.category = 'a')
   OR (r.product_id = p.id AND r.rating > 1 AND p.price > 0.5);

-- WHERE conditions also join the left operand of a LEFT JOIN (no product).
CREATE MATERIALIZED VIEW cross_then_left_join AS
SELECT p.id AS post_id, u.name, f.follower_id
FROM posts p CROSS JOIN users u LEFT JOIN follows f ON f.followee_id = u.id
WHERE p.author_id = u.id AND (f.follower_id IS NULL OR f.follower_id <> p.id);

CREATE MATERIALIZED VIEW comma_left_join_on_prefix_where AS
SELECT f.id AS follow_id, u.id AS user_id, p.id AS post_id
FROM follows f, users u LEFT JOIN posts p ON p.author_id = u.id AND p.created_at > f.id
WHERE u.id = f.followee_id OR u.karma IS NULL;

CREATE MATERIALIZED VIEW mentions_per_user AS
SELECT u.x, COUNT(*) AS n FROM (SELECT author_id AS x FROM posts UNION ALL SELECT user_id FROM reviews) AS u
GROUP BY u.x;

CREATE MATERIALIZED VIEW busiest_category AS
SELECT p.category, COUNT(*) AS n FROM reviews r JOIN products p ON p.id = r.product_id
GROUP BY p.category ORDER BY n DESC, p.category LIMIT 1;

CREATE MATERIALIZED VIEW followed_authors AS
WITH authors AS (SELECT DISTINCT author_id AS id FROM posts),
     followed AS (SELECT followee_id AS id FROM follows)
SELECT a.id, u.name FROM (SELECT id FROM authors INTERSECT SELECT id FROM followed) AS a
LEFT JOIN users u ON u.id = a.id;

CREATE MATERIALIZED VIEW value_rows AS
VALUES (1, 'a'), (2, NULL), (1, 'a');

CREATE MATERIALIZED VIEW users_or_listed AS
SELECT id, name FROM users UNION VALUES (1, 'ann'), (100, NULL), (2, 'Bob');

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

-- Bare columns functionally dependent on the GROUP BY key: a table's
-- primary key grouped by determines its other columns (also through `*`
-- and on the padded side of a LEFT JOIN).
CREATE MATERIALIZED VIEW post_review_counts AS
SELECT p.id, p.title, u.name, COUNT(r.id) AS reviews, MAX(r.rating) + p.score AS best_plus
FROM posts p LEFT JOIN users u ON u.id = p.author_id LEFT JOIN reviews r ON r.user_id = p.author_id
GROUP BY p.id, u.id
HAVING p.score IS NULL OR p.score > -2;

CREATE MATERIALIZED VIEW user_rows_with_counts AS
SELECT u.*, COUNT(p.id) AS posts FROM users u LEFT JOIN posts p ON p.author_id = u.id GROUP BY u.id;

-- RANK() / DENSE_RANK() in the top-k form (helper G): ties share a number,
-- every row tied at the boundary is kept; NULLs, duplicates, deletions and
-- updates of partition and order columns come from the workload.
CREATE MATERIALIZED VIEW priciest_ranked AS
SELECT category, product_id, price, rk FROM (
  SELECT category, id AS product_id, price,
         RANK() OVER (PARTITION BY category ORDER BY price DESC) AS rk
  FROM products) AS ranked
WHERE rk <= 2;

CREATE MATERIALIZED VIEW best_reviews_dense AS
SELECT product_id, id FROM (
  SELECT product_id, id, DENSE_RANK() OVER (PARTITION BY product_id ORDER BY rating DESC) AS rk
  FROM reviews) AS r
WHERE rk <= 2;

-- LAG / LEAD: every row keeps its neighbour's value; inserts, deletes and
-- moves of partition and order columns change the neighbours of others.
CREATE MATERIALIZED VIEW price_steps AS
SELECT id, category, price,
       LAG(price) OVER (PARTITION BY category ORDER BY price, id) AS prev_price,
       price - LAG(price, 1, 0) OVER (PARTITION BY category ORDER BY price, id) AS step,
       LEAD(name, 2, 'none') OVER (PARTITION BY category ORDER BY price DESC, id) AS second_next
FROM products;

CREATE MATERIALIZED VIEW post_neighbours AS
SELECT p.id, u.name,
       LEAD(p.score) OVER (PARTITION BY p.author_id ORDER BY p.created_at DESC NULLS LAST, p.id) AS next_score,
       LAG(p.title, 3, u.name) OVER (ORDER BY p.id) AS third_before,
       LEAD(p.id, 0) OVER (ORDER BY p.score, p.id) AS itself
FROM posts p JOIN users u ON u.id = p.author_id
WHERE p.score IS NOT NULL;

CREATE MATERIALIZED VIEW rating_changes AS
SELECT r.id, r.product_id, r.prev FROM (
  SELECT id, product_id, LAG(rating, 1, -1) OVER (PARTITION BY product_id ORDER BY user_id, id) AS prev
  FROM reviews) AS r
WHERE r.prev > 2;

-- Not unique: two posts with the same author and score are two rows.
CREATE MATERIALIZED VIEW low_scores_ranked AS
SELECT author_id, score, rk FROM (
  SELECT author_id, score, RANK() OVER (ORDER BY score, author_id DESC) AS rk FROM posts) AS p
WHERE rk < 4;

CREATE MATERIALIZED VIEW top_author_posts_dense AS
SELECT u.name, p.id, p.rk FROM (
  SELECT id, author_id, DENSE_RANK() OVER (PARTITION BY author_id ORDER BY score % 3 DESC NULLS LAST) AS rk
  FROM posts) AS p JOIN users u ON u.id = p.author_id
WHERE p.rk BETWEEN 1 AND 2 AND u.karma IS NOT NULL;

CREATE MATERIALIZED VIEW first_ledger_rank AS
SELECT acct, id, raw, rk FROM (
  SELECT acct, id, raw, RANK() OVER (PARTITION BY acct ORDER BY raw) AS rk FROM ledger) AS l
WHERE rk = 1;

CREATE MATERIALIZED VIEW title_dense_rank AS
SELECT title, rk FROM (
  SELECT title, DENSE_RANK() OVER (ORDER BY title DESC) AS rk FROM posts) AS t
WHERE rk <= 3;

-- rk = 1 keeps every tie: the partition is not a key of the view.
CREATE MATERIALIZED VIEW best_score_per_author AS
SELECT author_id, created_at FROM (
  SELECT author_id, created_at, RANK() OVER (PARTITION BY author_id ORDER BY score DESC) AS rk FROM posts) AS p
WHERE rk = 1;
CREATE MATERIALIZED VIEW previous_posts AS
SELECT p.id,
       (SELECT q.title FROM posts q WHERE q.author_id = p.author_id AND q.id < p.id
        ORDER BY q.id DESC LIMIT 1) AS previous_title,
       (SELECT r.rating FROM reviews r WHERE r.rating >= p.score ORDER BY r.rating, r.id LIMIT 1) AS closest_rating_above
FROM posts p;

-- Uncorrelated scalar subqueries compared with the outer rows, maintained as
-- the outer rows ordered by the compared value (denorm-core's ScalarFilter:
-- a move of the scalar re-emits only the rows it passes): ties under `=`,
-- `<>`, the scalar on the left, a NULL scalar (the average of no rows), an
-- INTEGER sum against a REAL average, and columns holding every storage
-- class (text and BLOBs above numbers, 1 beside 1.0).
CREATE MATERIALIZED VIEW posts_at_max_score AS
SELECT id, author_id, score FROM posts WHERE score = (SELECT MAX(score) FROM posts);

CREATE MATERIALIZED VIEW ratings_off_follow_count AS
SELECT id, rating FROM reviews WHERE rating <> (SELECT COUNT(*) FROM follows);

CREATE MATERIALIZED VIEW helpful_over_category_a AS
SELECT id, helpful FROM reviews
WHERE (SELECT AVG(price) FROM products WHERE category = 'a') <= helpful;

CREATE MATERIALIZED VIEW heavy_accounts AS
SELECT acct, SUM(qty) AS total FROM ledger GROUP BY acct
HAVING SUM(qty) >= (SELECT AVG(amount) FROM ledger);

CREATE MATERIALIZED VIEW raw_below_max AS
SELECT id, raw FROM ledger WHERE raw < (SELECT MAX(raw) FROM ledger);

CREATE MATERIALIZED VIEW qty_over_mean_amount AS
SELECT id, qty FROM ledger WHERE qty > (SELECT AVG(amount) FROM ledger WHERE acct = 1);

-- Under NOCASE both sides compare as collation keys (the outer rows are
-- ordered by their keys).
CREATE MATERIALIZED VIEW names_from_max_nocase AS
SELECT id, name FROM users WHERE name COLLATE NOCASE >= (SELECT MAX(name) FROM users);
-- EXISTS / NOT EXISTS / COUNT correlated by equalities and one `<>` (planned
-- by counting: the rows matching the equalities with a non-NULL inner side,
-- minus those equal to the outer side): NULLs on both sides of `<>` and in
-- the equalities, no equality at all, text and expression sides, deletes of
-- the referenced rows and updates of the correlated columns (the workload's).
-- IN with `<>` keeps the domain plan.

CREATE MATERIALIZED VIEW posts_other_reviewers AS
SELECT p.id,
       EXISTS (SELECT 1 FROM reviews r WHERE r.product_id = p.score AND r.user_id <> p.author_id) AS other_reviewer,
       NOT EXISTS (SELECT * FROM reviews r WHERE r.product_id = p.score AND p.author_id != r.user_id
                   AND r.rating > 3) AS no_other_high,
       (SELECT COUNT(*) FROM reviews r WHERE r.product_id = p.score AND r.user_id <> p.author_id) AS others,
       (SELECT COUNT(r.helpful) * 10 + COUNT(*) FROM reviews r
        WHERE r.user_id <> p.author_id AND r.product_id = p.score AND r.rating >= 2) AS others_helpful,
       EXISTS (SELECT 1 FROM reviews r WHERE r.product_id = p.id AND r.rating + 1 <> p.score * 2) AS other_rating,
       EXISTS (SELECT 1 FROM reviews r WHERE r.product_id = p.score AND r.user_id <> p.author_id
               AND p.created_at > 10) AS late_and_reviewed
FROM posts p;

CREATE MATERIALIZED VIEW reviews_by_others_only AS
SELECT r1.id, r1.product_id FROM reviews r1
WHERE EXISTS (SELECT 1 FROM reviews r2 WHERE r2.product_id = r1.product_id AND r2.user_id <> r1.user_id)
  AND NOT EXISTS (SELECT 1 FROM reviews r3 WHERE r3.product_id = r1.product_id
                  AND r3.user_id <> r1.user_id AND r3.rating > 4)
  AND (SELECT COUNT(*) FROM reviews r4 WHERE r4.product_id = r1.product_id AND r4.rating <> r1.rating) < 3;

-- q21's shape: WHERE terms without subqueries filter the joined rows before
-- the subqueries' domains are taken.
CREATE MATERIALIZED VIEW others_only_in_category AS
SELECT r1.id, p.name FROM reviews r1 JOIN products p ON p.id = r1.product_id
WHERE r1.rating > 2 AND p.category = 'a'
  AND EXISTS (SELECT 1 FROM reviews r2 WHERE r2.product_id = r1.product_id AND r2.user_id <> r1.user_id)
  AND NOT EXISTS (SELECT 1 FROM reviews r3 WHERE r3.product_id = r1.product_id AND r3.user_id <> r1.user_id
                  AND r3.helpful > r3.rating);

CREATE MATERIALIZED VIEW not_equal_shapes AS
SELECT u.id,
       EXISTS (SELECT 1 FROM posts p WHERE p.author_id <> u.karma) AS other_author,
       (SELECT COUNT(p.score) FROM posts p WHERE p.title <> u.name) AS other_titles,
       EXISTS (SELECT 1 FROM posts p WHERE p.author_id = u.id AND p.score = u.karma
               AND p.title <> u.avatar) AS same_score_other_title,
       NOT EXISTS (SELECT 1 FROM follows f WHERE f.followee_id = u.id AND f.follower_id <> u.karma) AS no_other_follower
FROM users u;

CREATE MATERIALIZED VIEW in_with_not_equal AS
SELECT p.id,
       p.score IN (SELECT r.rating FROM reviews r WHERE r.product_id = p.author_id AND r.user_id <> p.author_id)
         AS rated_by_other,
       p.created_at NOT IN (SELECT r.user_id FROM reviews r WHERE r.product_id = p.score AND r.rating <> p.score)
         AS not_other
FROM posts p;

-- Join order and restrictions an OR implies (TPC-H Q7's shape): each
-- branch restricts u and p alone, so both are filtered before the joins,
-- and the restricted tables are joined first; NULL names, scores and
-- categories reach every branch.
CREATE MATERIALIZED VIEW crossed_pairs AS
SELECT u.name, p.title, r.rating, pr.category
FROM reviews r, users u, posts p, products pr
WHERE r.user_id = u.id AND p.author_id = u.id AND pr.id = r.product_id
  AND ((u.name = 'ann' AND p.score > 2 AND pr.category = 'a') OR (u.name = 'bob' AND p.score IS NULL)
       OR (u.karma < 0 AND p.title LIKE 'a%' AND pr.category IS NULL));

-- Keys by transitivity (TPC-H Q5's shape): follows joins posts through
-- users' id, which neither compares with it directly.
CREATE MATERIALIZED VIEW transitive_keys AS
SELECT f.id AS follow_id, p.id AS post_id, u.name
FROM follows f, posts p, users u
WHERE f.followee_id = u.id AND p.author_id = f.followee_id AND u.karma > 3 AND p.score = 1;

-- Two columns of one table equal to one column of another: the equality
-- between them follows, but only the two keys apply it.
CREATE MATERIALIZED VIEW self_reviews AS
SELECT r.id, u.name FROM users u, reviews r WHERE r.product_id = u.id AND r.user_id = u.id AND u.karma > 1;

-- FULL [OUTER] JOIN … USING and NATURAL FULL JOIN: the merged column is
-- COALESCE(left.c, right.c) (SQLite 3.39+, as PostgreSQL), also through
-- `*`, WHERE, GROUP BY and a later join's ON.
CREATE MATERIALIZED VIEW users_full_posts AS
SELECT id, u.name, p.title, u.id AS uid, p.id AS pid FROM users u FULL JOIN posts p USING (id);

CREATE MATERIALIZED VIEW users_natural_full_products AS
SELECT * FROM users NATURAL FULL JOIN products;

CREATE MATERIALIZED VIEW full_using_groups AS
SELECT id, COUNT(*) AS n, MAX(r.rating) AS best, SUM(p.price) AS price
FROM products p FULL OUTER JOIN reviews r USING (id) WHERE id < 8 GROUP BY id;

CREATE MATERIALIZED VIEW full_using_then_join AS
SELECT id, f.follower_id, u.name, p.title
FROM users u FULL JOIN follows f USING (id) JOIN (SELECT author_id, title FROM posts) p ON p.author_id = id;

CREATE MATERIALIZED VIEW full_using_exists AS
SELECT id, u.karma, f.followee_id FROM users u FULL JOIN follows f USING (id)
WHERE EXISTS (SELECT 1 FROM reviews r WHERE r.user_id = id);

-- A USING over a column a FULL JOIN merged joins on COALESCE(left, right);
-- a FULL JOIN after it merges all three; a FULL pair of an integer and a
-- real column keeps each value as it is (SQLite's COALESCE).
CREATE MATERIALIZED VIEW full_using_chained AS
SELECT id, u.name, p.title, r.rating FROM users u FULL JOIN posts p USING (id) JOIN reviews r USING (id);

CREATE MATERIALIZED VIEW full_using_full_chain AS
SELECT id, u.karma, p.score, f.followee_id
FROM users u FULL JOIN posts p USING (id) FULL JOIN follows f USING (id);

CREATE MATERIALIZED VIEW full_using_int_real AS
SELECT id, u.name, p.title FROM users u FULL JOIN (SELECT id * 1.0 AS id, title FROM posts) p USING (id);
