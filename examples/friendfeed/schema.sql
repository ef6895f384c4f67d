-- FriendFeed's schema-less storage on a relational database: every entry is
-- an entity, a bag of properties stored as JSON text in `body`; the database
-- knows nothing of its shape, so adding a property needs no migration.
-- denorm keeps the index tables FriendFeed wrote beside the entities (one per
-- access pattern) as the views in views.sql. denorm.toml's `[source] init`
-- runs this file once to create app.db when it does not exist.
--
-- FriendFeed's index tables were derived from properties inside the body;
-- denorm's planner does not read JSON yet (json_extract, ->> and json_each
-- are refused), so the properties that are indexed, user_id and feed_id,
-- are also columns of the entity row, written with it.

CREATE TABLE entities (
    id        TEXT PRIMARY KEY,    -- a 16-byte UUID, as 32 hex digits
    user_id   INTEGER NOT NULL,    -- who posted it
    feed_id   INTEGER NOT NULL,    -- the feed (a user's own, or a room) it was posted to
    updated   TEXT NOT NULL,       -- last activity: posting, editing, a comment or a like
    body      TEXT NOT NULL        -- everything else, as a JSON object
);
CREATE INDEX entities_updated ON entities (updated);

INSERT INTO entities (id, user_id, feed_id, updated, body) VALUES
    ('71f0c4d46b8e4f2e9a8c1d7a3c3b2e11', 1, 1, '2009-02-27 10:00:00',
     '{"title": "How FriendFeed uses MySQL to store schema-less data", "link": "https://backchannel.org/blog/friendfeed-schemaless-mysql", "comments": [], "likes": 3}'),
    ('0a9d3e5c2b7f48d1b6e4f0c9a8d7e6f5', 2, 100, '2009-02-27 10:05:00',
     '{"title": "Anyone at SXSW?", "comments": [{"user_id": 1, "text": "yes!"}], "likes": 0}'),
    ('c3b2a1f0e9d84c7b6a5f4e3d2c1b0a99', 1, 100, '2009-02-27 11:30:00',
     '{"title": "Café recommendations in Austin ☕", "comments": [], "likes": 1}');
