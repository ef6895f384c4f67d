-- Document views built with the JSON functions and aggregates, checked
-- against SQLite like differential.sql. Views with LIMIT inside an aggregate
-- (a denorm extension SQLite does not run) are compared with the equivalent
-- standard SQL given in REFERENCE_SQL in differential_sqlite.rs.

CREATE MATERIALIZED VIEW product_documents AS
SELECT p.id, json_object('id', p.id, 'name', p.name, 'price', p.price,
         'reviews', json_group_array(json_object('id', r.id, 'rating', r.rating, 'helpful', r.helpful)
                                     ORDER BY r.rating DESC, r.id),
         'ratings', json_group_array(r.rating ORDER BY r.rating NULLS LAST, r.id DESC)) AS doc
FROM products p LEFT JOIN reviews r ON r.product_id = p.id
GROUP BY p.id, p.name, p.price;

CREATE MATERIALIZED VIEW product_newest_reviews AS
SELECT product_id, json_group_array(json_object('id', id, 'user', user_id, 'rating', rating) ORDER BY id DESC LIMIT 3) AS newest,
       COUNT(*) AS reviews
FROM reviews GROUP BY product_id;

CREATE MATERIALIZED VIEW author_documents AS
SELECT u.id, json_object('name', u.name, 'avatar', u.avatar,
         'posts', json_group_array(json_array(p.id, p.title, p.score, p.score > 2) ORDER BY p.created_at DESC, p.id DESC LIMIT 2),
         'post_count', COUNT(p.id)) AS doc
FROM users u LEFT JOIN posts p ON p.author_id = u.id
GROUP BY u.id, u.name, u.avatar;

CREATE MATERIALIZED VIEW review_scores_by_user AS
SELECT user_id, json_group_object(id, rating) AS rating_by_review, json_group_object(id, helpful) AS helpful_by_review
FROM reviews GROUP BY user_id;

CREATE MATERIALIZED VIEW author_titles AS
SELECT author_id, json_group_object(title, score) AS score_by_title,
       json_group_array(title ORDER BY title DESC, id) AS titles
FROM posts GROUP BY author_id;

CREATE MATERIALIZED VIEW catalog_document AS
SELECT json_group_array(name ORDER BY name, id) AS names, json_group_object(name, price) AS price_by_name,
       json_group_array(json_object('id', id, 'price', price * 3, 'half', price / 2) ORDER BY price DESC, id) AS by_price
FROM products;

CREATE MATERIALIZED VIEW post_json_cards AS
SELECT id, json_object('title', title, 'score', score, 'meta', json_array(score, created_at, title, score > 2, score * 0.5)) AS card,
       json_array() AS empty, json_object() AS no_fields
FROM posts;

CREATE MATERIALIZED VIEW rating_histograms AS
SELECT product_id, json_group_object(rating, n) AS histogram, SUM(n) AS reviews
FROM (SELECT product_id, rating, COUNT(*) AS n FROM reviews GROUP BY product_id, rating) AS h
GROUP BY product_id;

CREATE MATERIALIZED VIEW post_cards_from_derived AS
SELECT author_id, json_group_array(card ORDER BY id) AS cards
FROM (SELECT id, author_id, json_object('id', id, 'title', title) AS card FROM posts) AS c
GROUP BY author_id;
