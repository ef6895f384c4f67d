-- The normalized source of truth of a small social app: users, their posts
-- and likes. The application writes only these tables; denorm keeps the read
-- models in views.sql up to date. denorm.toml's `[source] init` runs this
-- file once to create app.db when it does not exist.
--
-- Deleting an account deletes its posts and likes, and every like of its
-- posts (ON DELETE CASCADE; the writer turns on PRAGMA foreign_keys, as an
-- application does on every connection).

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    avatar_url  TEXT,
    created_at  TEXT NOT NULL
);

CREATE TABLE posts (
    id          INTEGER PRIMARY KEY,
    author_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE ON UPDATE CASCADE,
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX posts_author ON posts (author_id);

CREATE TABLE likes (
    post_id     INTEGER NOT NULL REFERENCES posts (id) ON DELETE CASCADE ON UPDATE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE ON UPDATE CASCADE,
    liked_at    TEXT NOT NULL,
    PRIMARY KEY (post_id, user_id)
);

INSERT INTO users (id, name, avatar_url, created_at) VALUES
    (1, 'Sarah Chen', 'https://cdn.example.com/sarah.jpg', '2025-01-02'),
    (2, 'Omar Haddad', NULL, '2025-01-05'),
    (3, 'Ines Duarte', 'https://cdn.example.com/ines.jpg', '2025-01-09');

INSERT INTO posts (id, author_id, body, created_at) VALUES
    (1, 1, 'Just shipped v2.0', '2025-01-15T09:30:00Z'),
    (2, 2, 'Keyboard review is up', '2025-01-15T11:02:00Z'),
    (3, 1, 'Thanks for all the feedback!', '2025-01-16T08:12:00Z');

INSERT INTO likes (post_id, user_id, liked_at) VALUES
    (1, 2, '2025-01-15T10:00:00Z'),
    (1, 3, '2025-01-15T10:05:00Z'),
    (2, 1, '2025-01-15T12:00:00Z');
