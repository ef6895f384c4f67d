-- Groups of values SQLite calls equal but stores apart (issue 11, wrong
-- result 3: `1` and `1.0`, `0.0` and `-0.0`). A group shows the least
-- spelling among its current rows (an integer before the double equal to
-- it, -0.0 before 0.0), not the value of the row that created it: compared
-- under that rule (`reference.rs` `BY_RULE`).

CREATE MATERIALIZED VIEW spelled_groups AS
SELECT x, COUNT(*) AS n FROM spelled GROUP BY x;

CREATE MATERIALIZED VIEW spelled_distinct AS
SELECT DISTINCT x FROM spelled;

CREATE MATERIALIZED VIEW spelled_products AS
SELECT r * s AS p, COUNT(*) AS n FROM spelled GROUP BY r * s;

CREATE MATERIALIZED VIEW spelled_expressions AS
SELECT typeof(x) AS t, abs(x) AS a, COUNT(*) AS n FROM spelled GROUP BY x;

-- SUM/AVG/total(DISTINCT x): a value spelled apart counts once, as its least
-- spelling (so SUM of 1 and 1.0 is the integer 1); the text '1' is another
-- value, added as the number it reads as.
CREATE MATERIALIZED VIEW spelled_sums AS
SELECT s, SUM(DISTINCT x) AS sd, AVG(DISTINCT x) AS ad, total(DISTINCT x) AS td FROM spelled GROUP BY s;
