-- The home feed: each user's timeline of posts by the people they follow,
-- newest first, each post carrying a copy of its author's name and avatar.
--
-- partition_by: one feed per reader (owner_id = the follower).
-- order_by:     the page order; a read `?owner_id=eq.X&order=created_at.desc,
--               post_id.desc&limit=20` walks one partition in that order.
-- fanout_limit: an author with more than 20 followers is a celebrity: their
--               posts are not copied into every follower's feed (fan-out on
--               write) but stored once and merged into each reader's page at
--               read time (fan-out on read). Gaining or losing followers
--               moves an author between the two paths.
-- retain:       at most 200 rows per feed are materialized; deeper pages
--               are not served (nobody scrolls that far).
CREATE MATERIALIZED VIEW home_feed
  WITH (partition_by = 'owner_id', order_by = 'created_at DESC, post_id DESC', fanout_limit = 20, retain = 200)
AS SELECT f.follower_id AS owner_id,
          p.id AS post_id,
          p.body,
          p.created_at,
          u.id AS author_id,
          u.name AS author_name,
          u.avatar_url AS author_avatar
   FROM follows f
   JOIN posts p ON p.author_id = f.followee_id
   JOIN users u ON u.id = p.author_id;

-- Follower and following counts for the profile header ("59 followers").
CREATE MATERIALIZED VIEW follower_counts
  WITH (key = 'user_id')
AS SELECT u.id AS user_id,
          u.name,
          COUNT(f.follower_id) AS followers
   FROM users u
   LEFT JOIN follows f ON f.followee_id = u.id
   GROUP BY u.id, u.name;
