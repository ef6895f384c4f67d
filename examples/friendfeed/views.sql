-- The index tables of FriendFeed's schema-less design: for each way the
-- site reads entities, one copy keyed for that read. FriendFeed's index
-- rows held only the key and the entity id, and every read then fetched the
-- entities; these copy the body too, so a page is one range read. An edit,
-- comment or like (a new body and updated) moves the entity to the front of
-- both indexes; moving it to another feed moves it between feeds.

-- A user's entries, newest first: ?user_id=eq.1&order=updated.desc&limit=30.
CREATE MATERIALIZED VIEW entities_by_user
  WITH (key = 'user_id, updated, entity_id', max_staleness = '1s')
AS SELECT e.user_id,
          e.updated,
          e.id AS entity_id,
          e.feed_id,
          e.body
   FROM entities e;

-- A feed's (or room's) entries, newest first: ?feed_id=eq.100&order=updated.desc.
CREATE MATERIALIZED VIEW entities_by_feed
  WITH (key = 'feed_id, updated, entity_id', max_staleness = '1s')
AS SELECT e.feed_id,
          e.updated,
          e.id AS entity_id,
          e.user_id,
          e.body
   FROM entities e;

-- The list of feeds with their size and last activity.
CREATE MATERIALIZED VIEW feed_activity
  WITH (max_staleness = '5s')
AS SELECT e.feed_id,
          COUNT(*) AS entries,
          COUNT(DISTINCT e.user_id) AS posters,
          MAX(e.updated) AS last_updated
   FROM entities e
   GROUP BY e.feed_id;

-- FriendFeed also indexed properties that live only in the body, such as
-- the shared link (index_link). denorm refuses that today:
--
--   CREATE MATERIALIZED VIEW entities_by_link
--     WITH (key = 'link, entity_id')
--   AS SELECT json_extract(e.body, '$.link') AS link, e.id AS entity_id
--      FROM entities e
--      WHERE json_extract(e.body, '$.link') IS NOT NULL;
--
--   error: function json_extract(…) is not supported
--     hint: supported functions: abs, coalesce, length, lower, nullif, upper; aggregates: count, sum, avg, min, max
--
-- (`e.body ->> '$.link'` is refused with "operator ->> is not supported".)
