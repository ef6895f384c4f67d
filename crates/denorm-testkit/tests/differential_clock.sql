-- Views refreshed on a schedule that read the current time: the harness
-- freezes the engine's clock and runs each SELECT on SQLite with the same
-- time written in place of 'now' (see `denorm_testkit::at_time`).
CREATE MATERIALIZED VIEW recent WITH (refresh = '1m') AS
SELECT id, created_at FROM events WHERE created_at > datetime('now', '-1 hour');

CREATE MATERIALIZED VIEW recent_by_kind WITH (refresh = '1m') AS
SELECT kind, COUNT(*) AS n FROM events
WHERE created_at >= datetime('now', '-30 minutes') AND created_at <= datetime('now')
GROUP BY kind;

CREATE MATERIALIZED VIEW ages WITH (refresh = '1m') AS
SELECT id, unixepoch() - unixepoch(created_at) AS age_s, julianday('now') - julianday(created_at) AS age_d FROM events;

CREATE MATERIALIZED VIEW today WITH (refresh = '1m') AS
SELECT id, date(created_at) = CURRENT_DATE AS is_today, CURRENT_TIMESTAMP AS at, CURRENT_TIME AS t,
       strftime('%Y-%m-%d %H:%M:%f', 'now') AS ms
FROM events WHERE kind <> 'x';

CREATE MATERIALIZED VIEW due WITH (refresh = '1m') AS
SELECT k.kind, (SELECT COUNT(*) FROM events e WHERE e.kind = k.kind AND e.created_at < datetime('now', '-10 minutes')) AS old
FROM kinds k;

CREATE MATERIALIZED VIEW latest WITH (refresh = '1m') AS
SELECT kind, MAX(created_at) AS last FROM events GROUP BY kind HAVING MAX(created_at) > datetime('now', '-20 minutes');

CREATE MATERIALIZED VIEW clock_only WITH (refresh = '1m') AS
SELECT date('now', 'start of month') AS month, time() AS t, datetime('now', 'subsec') AS s,
       datetime('now', 'unixepoch') AS u, datetime('now', 'auto') AS a, julianday('now', 'julianday') AS j,
       date('now', 'start of month', '+1 month', '-1 day') AS month_end, strftime('%j %W %w', 'now') AS f;
