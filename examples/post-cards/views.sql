-- Duplicate fields: a post card carries a copy of its author's name and
-- avatar, so rendering a feed needs no join with users. Renaming a user (or
-- changing the avatar) rewrites every card of that user's posts.

-- One card per post, looked up by post id.
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

-- The same cards keyed for a profile page ("this author's posts, newest
-- first": `?author_id=eq.1&order=created_at.desc` reads one range of the
-- index), with each post's like count.
CREATE MATERIALIZED VIEW author_post_cards
  WITH (key = 'author_id, post_id', max_staleness = '1s')
AS SELECT u.id AS author_id,
          p.id AS post_id,
          u.name AS author_name,
          u.avatar_url AS author_avatar,
          p.body,
          p.created_at,
          COUNT(l.user_id) AS likes
   FROM users u
   JOIN posts p ON p.author_id = u.id
   LEFT JOIN likes l ON l.post_id = p.id
   GROUP BY u.id, p.id, u.name, u.avatar_url, p.body, p.created_at;

-- The profile header: name, avatar and how many posts, also for users who
-- have not posted yet.
CREATE MATERIALIZED VIEW user_profiles
  WITH (key = 'user_id', max_staleness = '1s')
AS SELECT u.id AS user_id,
          u.name,
          u.avatar_url,
          COUNT(p.id) AS posts
   FROM users u
   LEFT JOIN posts p ON p.author_id = u.id
   GROUP BY u.id, u.name, u.avatar_url;
