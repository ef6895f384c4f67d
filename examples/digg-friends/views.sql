-- Digg's "which of my friends dugg this item", precomputed: the
-- intersection of "users who dugg the item" and "users I befriended",
-- fanned out to one row per (user, item, friend). Digg computed it in PHP
-- (a 1.5 s query for the friends, then a 14 s `userid IN (…)` query), and
-- then denormalized it into Cassandra by hand.

-- For every user, every item one of their friends dugg, with the friend's
-- name: `?userid=eq.4&itemid=eq.100&order=digdate.desc&limit=4` is one range
-- of the index. A digg fans out to every follower of the digger; a new
-- friendship brings in all of the friend's diggs; a rename rewrites every
-- row that shows the name.
CREATE MATERIALIZED VIEW friend_diggs
  WITH (key = 'userid, itemid, friendid', max_staleness = '2s')
AS SELECT f.userid,
          d.itemid,
          f.friendid,
          u.username AS friendname,
          d.digdate,
          d.id AS digg_id
   FROM friends f
   JOIN diggs d ON d.userid = f.friendid
   JOIN users u ON u.id = f.friendid;

-- The digg count on the item, for every item, dugg or not.
CREATE MATERIALIZED VIEW item_digg_counts
  WITH (key = 'itemid', max_staleness = '2s')
AS SELECT i.id AS itemid,
          i.title,
          COUNT(d.id) AS diggs,
          MAX(d.digdate) AS last_digg
   FROM items i
   LEFT JOIN diggs d ON d.itemid = i.id
   GROUP BY i.id, i.title;

-- Digg's Friends table stored username and friendname copies beside the
-- ids; here they are a view, so a rename fixes every copy (the seed's
-- "fixup jobs" are not needed). `?userid=eq.1` lists one user's friends.
CREATE MATERIALIZED VIEW friend_lists
  WITH (key = 'userid, friendid', max_staleness = '2s')
AS SELECT f.userid,
          me.username,
          f.friendid,
          friend.username AS friendname,
          f.mutual,
          f.date_created
   FROM friends f
   JOIN users me ON me.id = f.userid
   JOIN users friend ON friend.id = f.friendid;
