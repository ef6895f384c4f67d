-- The normalized source of truth of a small social network: users, who
-- follows whom, and posts. The application writes only these tables; denorm
-- keeps the home feed in views.sql up to date. denorm.toml's `[source] init`
-- runs this file once to create app.db when it does not exist.
--
-- Follower counts follow a power law, as on every real network: three
-- "celebrities" (users 1-3) are followed by most people, a few authors by a
-- dozen, everybody else by a handful. views.sql's fanout_limit (20) sits
-- between them, so the celebrities' posts are stored once and merged into
-- each reader's page, while everybody else's are copied into their
-- followers' feeds; the writer moves authors across the limit both ways.
--
-- Timestamps are NOT NULL, so the feed's order never meets a NULL.

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    avatar_url  TEXT,
    created_at  TEXT NOT NULL
);

CREATE TABLE follows (
    follower_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    followee_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (follower_id, followee_id)
);
CREATE INDEX follows_followee ON follows (followee_id);

CREATE TABLE posts (
    id          INTEGER PRIMARY KEY,
    author_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX posts_author ON posts (author_id, created_at);

-- 60 users; 1-3 are celebrities.
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60)
INSERT INTO users (id, name, avatar_url, created_at)
SELECT i,
       CASE i WHEN 1 THEN 'Taylor Vance' WHEN 2 THEN 'Chef Ramon' WHEN 3 THEN 'NASA Fan Club'
              ELSE 'user' || i END,
       CASE WHEN i % 4 = 0 THEN NULL ELSE 'https://cdn.example.com/u' || i || '.jpg' END,
       printf('2025-01-%02d', 1 + i % 28)
FROM n;

-- Power-law follows: user 1 is followed by every user (59 followers), user 2
-- by two thirds (39), user 3 by every third user (19: just under the limit);
-- 4-9 by 6-10 users each; everybody also follows two "friends".
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60)
INSERT OR IGNORE INTO follows (follower_id, followee_id, created_at)
SELECT f.i, t.i, '2025-01-20'
FROM n f JOIN n t ON f.i <> t.i
WHERE t.i = 1
   OR (t.i = 2 AND f.i % 3 <> 0)
   OR (t.i = 3 AND f.i % 3 = 0 AND f.i < 58)
   OR (t.i BETWEEN 4 AND 9 AND f.i % (t.i + 1) = 1)
   OR t.i = 10 + (f.i * 7) % 50
   OR t.i = 10 + (f.i * 13 + 5) % 50;

-- A first week of posts: the celebrities post most.
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 150)
INSERT INTO posts (id, author_id, body, created_at)
SELECT i,
       CASE WHEN i % 5 < 3 THEN 1 + i % 3 ELSE 4 + (i * 17) % 57 END,
       'post #' || i,
       printf('2025-02-01T%02d:%02d:00Z', (i * 9) / 60 % 24, (i * 9) % 60)
FROM n;
