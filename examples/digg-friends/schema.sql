-- The normalized source of truth of a Digg-like site: users, submitted
-- items, who follows whom (Digg's Friends table) and who dugg what (Diggs).
-- The application writes only these tables; denorm keeps the read models in
-- views.sql. denorm.toml's `[source] init` runs this file once to create
-- app.db when it does not exist.
--
-- Deleting a user deletes their diggs and follows; deleting an item deletes
-- its diggs (ON DELETE CASCADE; the writer turns on PRAGMA foreign_keys, as
-- an application does on every connection).

CREATE TABLE users (
    id        INTEGER PRIMARY KEY,
    username  TEXT NOT NULL UNIQUE
);

CREATE TABLE items (
    id            INTEGER PRIMARY KEY,
    title         TEXT NOT NULL,
    url           TEXT NOT NULL,
    submitted_by  INTEGER REFERENCES users (id) ON DELETE SET NULL,
    submitted_at  TEXT NOT NULL
);

-- Digg's Friends table, without its copied username/friendname columns:
-- the friend_lists view below holds those copies.
CREATE TABLE friends (
    id            INTEGER PRIMARY KEY,
    userid        INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    friendid      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    mutual        INTEGER NOT NULL DEFAULT 0,
    date_created  TEXT NOT NULL,
    UNIQUE (userid, friendid)
);
CREATE INDEX friends_friend ON friends (friendid);

CREATE TABLE diggs (
    id       INTEGER PRIMARY KEY,
    itemid   INTEGER NOT NULL REFERENCES items (id) ON DELETE CASCADE,
    userid   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    digdate  TEXT NOT NULL,
    UNIQUE (itemid, userid)
);
CREATE INDEX diggs_user ON diggs (userid);

INSERT INTO users (id, username) VALUES
    (1, 'kevinrose'), (2, 'alexis'), (3, 'scobleizer'), (4, 'jay'), (5, 'leah');

INSERT INTO items (id, title, url, submitted_by, submitted_at) VALUES
    (100, 'Looking to the Future with Cassandra', 'https://about.digg.com/blog/cassandra', 1, '2009-09-08 10:00:00'),
    (101, 'How FriendFeed uses MySQL to store schema-less data', 'https://backchannel.org/blog/friendfeed-schemaless-mysql', 3, '2009-09-08 11:30:00');

INSERT INTO friends (id, userid, friendid, mutual, date_created) VALUES
    (1, 1, 2, 1, '2009-01-01'),
    (2, 2, 1, 1, '2009-01-01'),
    (3, 1, 3, 0, '2009-02-01'),
    (4, 4, 1, 0, '2009-03-01'),
    (5, 4, 3, 0, '2009-03-02');

INSERT INTO diggs (id, itemid, userid, digdate) VALUES
    (1, 100, 2, '2009-09-08 10:05:00'),
    (2, 100, 3, '2009-09-08 10:07:00'),
    (3, 101, 1, '2009-09-08 11:45:00'),
    (4, 101, 5, '2009-09-08 12:00:00');
