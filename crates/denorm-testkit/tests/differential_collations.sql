-- Views over columns declared with COLLATE NOCASE / RTRIM and written
-- COLLATE clauses (issue 11, wrong result 1). Columns that group or
-- deduplicate under a collation show the least of their group's values
-- (the key if ORDER BY sorts by them); the harness compares columns that
-- carry a collation under it, and exactly where each group has one spelling.

CREATE MATERIALIZED VIEW city_groups AS
SELECT city, COUNT(*) AS n, SUM(pop) AS total FROM cities GROUP BY city;

CREATE MATERIALIZED VIEW city_is_paris AS
SELECT id, city, pop FROM cities WHERE city = 'paris';

CREATE MATERIALIZED VIEW distinct_cities AS
SELECT DISTINCT city FROM cities;

CREATE MATERIALIZED VIEW code_groups AS
SELECT code, COUNT(*) AS n, MAX(pop) AS top FROM cities GROUP BY code;

CREATE MATERIALIZED VIEW code_is_ab AS
SELECT id, code FROM cities WHERE code = 'ab' OR code <> 'x  ';

CREATE MATERIALIZED VIEW city_in_list AS
SELECT id FROM cities WHERE city IN ('PARIS', 'lyon') OR code NOT IN ('AB', ' x');

CREATE MATERIALIZED VIEW plain_nocase_groups AS
SELECT plain COLLATE NOCASE AS p, COUNT(*) AS n FROM cities GROUP BY plain COLLATE NOCASE;

CREATE MATERIALIZED VIEW plain_explicit AS
SELECT id FROM cities WHERE plain = 'PARIS' COLLATE NOCASE OR 'nice' COLLATE RTRIM = plain;

CREATE MATERIALIZED VIEW city_ranges AS
SELECT id, city < 'm' AS early, code > 'ab' AS after_ab FROM cities WHERE city BETWEEN 'B' AND 'o';

CREATE MATERIALIZED VIEW collation_precedence AS
SELECT id, plain = city AS left_binary, city = plain AS left_nocase,
       CAST(city AS TEXT) = 'PARIS' AS cast_keeps, city = 'PARIS' COLLATE BINARY AS explicit_wins
FROM cities;

CREATE MATERIALIZED VIEW city_visits AS
SELECT c.id, v.id AS vid, v.n FROM cities c JOIN visits v ON v.city = c.city;

CREATE MATERIALIZED VIEW plain_visits AS
SELECT c.id, v.id AS vid FROM cities c JOIN visits v ON c.plain = v.city;

CREATE MATERIALIZED VIEW visits_plain AS
SELECT c.id, v.id AS vid FROM cities c JOIN visits v ON v.city = c.plain;

CREATE MATERIALIZED VIEW visit_totals AS
SELECT c.city, COUNT(v.id) AS visits, SUM(v.n) AS n
FROM cities c LEFT JOIN visits v ON v.city = c.city
GROUP BY c.city HAVING c.city <> 'LYON';

CREATE MATERIALIZED VIEW city_extremes AS
SELECT lower(MIN(city)) AS lo, lower(MAX(city)) AS hi, COUNT(DISTINCT city) AS k,
       COUNT(DISTINCT code) AS codes, COUNT(DISTINCT plain) AS plains
FROM cities;

CREATE MATERIALIZED VIEW grouped_by_code_extremes AS
SELECT code, lower(MIN(city)) AS lo, COUNT(DISTINCT city) AS k FROM cities GROUP BY code;

CREATE MATERIALIZED VIEW nullif_keeps_value AS
SELECT id, NULLIF(city, 'PARIS') AS c, CASE city WHEN 'LYON' THEN 1 ELSE 0 END AS is_lyon FROM cities;

CREATE MATERIALIZED VIEW first_cities AS
SELECT id, city, code FROM cities ORDER BY city DESC, id LIMIT 4;

CREATE MATERIALIZED VIEW first_codes AS
SELECT id, code FROM cities ORDER BY code, id LIMIT 3 OFFSET 1;

CREATE MATERIALIZED VIEW first_distinct_cities AS
SELECT DISTINCT city FROM cities ORDER BY city LIMIT 3;

CREATE MATERIALIZED VIEW top_per_city AS
SELECT id, city, pop FROM (
  SELECT id, city, pop, ROW_NUMBER() OVER (PARTITION BY city ORDER BY code, id) AS rn FROM cities
) AS ranked WHERE rn <= 2;

CREATE MATERIALIZED VIEW cities_visited AS
SELECT c.id FROM cities c WHERE EXISTS (SELECT 1 FROM visits v WHERE v.city = c.city);

CREATE MATERIALIZED VIEW plain_visited AS
SELECT c.id FROM cities c WHERE NOT EXISTS (SELECT 1 FROM visits v WHERE c.plain = v.city);

CREATE MATERIALIZED VIEW cities_in_visits AS
SELECT c.id, c.plain IN (SELECT v.city FROM visits v) AS plain_in, c.city NOT IN (SELECT v.city FROM visits v WHERE v.n > 1) AS city_out
FROM cities c;

CREATE MATERIALIZED VIEW visits_per_city AS
SELECT c.id, (SELECT COUNT(*) FROM visits v WHERE v.city = c.city) AS visits,
       (SELECT SUM(v.n) FROM visits v WHERE c.plain = v.city) AS plain_n
FROM cities c;

CREATE MATERIALIZED VIEW visits_in_range AS
SELECT c.id FROM cities c WHERE c.plain IN (SELECT v.city FROM visits v WHERE v.n < c.pop);

CREATE MATERIALIZED VIEW derived_city_groups AS
SELECT d.city, COUNT(*) AS n FROM (SELECT city, pop FROM cities WHERE pop > 5) AS d GROUP BY d.city;

CREATE MATERIALIZED VIEW cte_distinct_then_group AS
WITH names AS (SELECT DISTINCT city FROM cities)
SELECT city, COUNT(*) AS n FROM names GROUP BY city;

CREATE MATERIALIZED VIEW union_all_cities AS
SELECT city FROM cities UNION ALL SELECT city FROM visits;

CREATE MATERIALIZED VIEW grouped_union_all AS
SELECT city, COUNT(*) AS n FROM (SELECT city FROM cities UNION ALL SELECT city FROM visits) AS u GROUP BY city;

CREATE MATERIALIZED VIEW using_city AS
SELECT c.id, v.id AS vid FROM cities c JOIN visits v USING (city);

CREATE MATERIALIZED VIEW or_common_city AS
SELECT c.id, v.id AS vid FROM cities c, visits v
WHERE (v.city = c.city AND v.n > 1) OR (v.city = c.city AND c.pop < 10);

CREATE MATERIALIZED VIEW having_and_subquery_on_groups AS
SELECT city, COUNT(*) AS n FROM cities GROUP BY city
HAVING city IN (SELECT v.city FROM visits v) OR COUNT(*) > 2;

CREATE MATERIALIZED VIEW union_cities AS
SELECT city FROM cities UNION SELECT city FROM visits;

CREATE MATERIALIZED VIEW plain_union_city AS
SELECT plain, pop FROM cities UNION SELECT city, n FROM visits;

CREATE MATERIALIZED VIEW city_except_visits AS
SELECT city, code FROM cities EXCEPT SELECT city, 'ab' FROM visits;

CREATE MATERIALIZED VIEW plain_intersect AS
SELECT plain COLLATE NOCASE FROM cities INTERSECT SELECT city FROM visits;

CREATE MATERIALIZED VIEW nested_compound AS
SELECT city FROM visits EXCEPT SELECT plain FROM cities UNION SELECT code FROM cities;

CREATE MATERIALIZED VIEW correlated_by_order AS
SELECT c.id,
       EXISTS (SELECT 1 FROM visits v WHERE v.city > c.city) AS later_visit,
       c.city IN (SELECT v.city FROM visits v WHERE v.n <> c.pop) AS in_other,
       (SELECT COUNT(*) FROM visits v WHERE v.city <= c.code) AS upto_code
FROM cities c;

CREATE MATERIALIZED VIEW city_groups_ordered AS
SELECT city, COUNT(*) AS n FROM cities GROUP BY city ORDER BY city;

CREATE MATERIALIZED VIEW first_city_groups AS
SELECT city, SUM(pop) AS total FROM cities GROUP BY city ORDER BY city DESC LIMIT 2;

CREATE MATERIALIZED VIEW in_list_collations AS
SELECT id, 'ab' IN (code, 'x') AS literal_first, 'PARIS' IN (city) AS one_column,
       plain IN ('PARIS' COLLATE NOCASE, 'lyon') AS explicit_item, plain IN ('NICE' COLLATE NOCASE) AS one_constant,
       city NOT IN (plain, 'rome') AS column_items
FROM cities;

CREATE MATERIALIZED VIEW explicit_everywhere AS
SELECT code COLLATE NOCASE AS c, COUNT(DISTINCT plain COLLATE NOCASE) AS plains,
       lower(MIN(plain COLLATE NOCASE)) AS lo, MAX(plain COLLATE BINARY) AS hi
FROM cities GROUP BY code COLLATE NOCASE;

CREATE MATERIALIZED VIEW distinct_explicit AS
SELECT DISTINCT plain COLLATE RTRIM AS p, city COLLATE BINARY AS c FROM cities;

CREATE MATERIALIZED VIEW ordered_explicit AS
SELECT id, plain FROM cities ORDER BY plain COLLATE NOCASE DESC, id LIMIT 3;

CREATE MATERIALIZED VIEW ranked_explicit AS
SELECT id, plain FROM (
  SELECT id, plain, ROW_NUMBER() OVER (PARTITION BY plain COLLATE NOCASE ORDER BY city COLLATE BINARY, id) AS rn
  FROM cities
) AS r WHERE rn = 1;

CREATE MATERIALIZED VIEW distinct_ordered_other_collation AS
SELECT DISTINCT plain FROM cities ORDER BY plain COLLATE NOCASE DESC, plain LIMIT 3;

-- Subqueries correlated by `<>`, counted: `a <> x` is NOT (a = x) under the
-- comparison's collation, so both counts are keyed by its collation key.
CREATE MATERIALIZED VIEW visits_elsewhere AS
SELECT v.id,
       EXISTS (SELECT 1 FROM cities c WHERE c.pop % 5 = v.n AND c.city <> v.city) AS other_city,
       (SELECT COUNT(*) FROM cities c WHERE c.pop % 5 = v.n AND v.city <> c.plain) AS other_plain,
       NOT EXISTS (SELECT 1 FROM cities c WHERE c.id % 5 = v.n AND c.code <> v.city) AS same_code,
       (SELECT COUNT(c.pop) FROM cities c WHERE c.plain <> v.city COLLATE BINARY) AS binary_others
FROM visits v;

-- MIN/MAX under a collation return a row's value, the least (bytewise) of
-- the values tied with the extreme (compared under that rule: BY_RULE).
CREATE MATERIALIZED VIEW city_min_max AS
SELECT MIN(city) AS lo, MAX(city) AS hi, MIN(code) AS lo_code, MAX(code) AS hi_code FROM cities;

CREATE MATERIALIZED VIEW visit_extremes AS
SELECT n, MIN(city) AS lo, MAX(city) AS hi, COUNT(*) AS k FROM visits GROUP BY n;

-- Ordered groups show a row's value too: the top-N sorts by the key.
CREATE MATERIALIZED VIEW top_city_groups AS
SELECT city, COUNT(*) AS n FROM cities GROUP BY city ORDER BY city DESC LIMIT 3;

CREATE MATERIALIZED VIEW ordered_distinct_codes AS
SELECT DISTINCT code FROM cities ORDER BY code;

-- FULL JOIN … USING over collated pairs: the join compares under the left
-- column's collation, and the merged column is COALESCE(left, right)
-- under the left column's collation too (SQLite 3.54: the COALESCE's
-- collation is its first argument's).
CREATE MATERIALIZED VIEW plain_full_visits AS
SELECT plain, c.id, v.vid FROM cities c FULL JOIN (SELECT id AS vid, city AS plain FROM visits) v USING (plain);

CREATE MATERIALIZED VIEW visits_full_plain AS
SELECT plain, COUNT(*) AS n
FROM (SELECT id AS vid, city AS plain FROM visits) v FULL JOIN cities c USING (plain) GROUP BY plain;

CREATE MATERIALIZED VIEW city_full_visits AS
SELECT city, c.id, v.id AS vid, city = 'PARIS' AS is_paris FROM cities c FULL JOIN visits v USING (city);

-- Expressions over collated group columns show a row's value (`Paris!`,
-- not the key's `paris!`) and compare under the collation (`city =
-- 'PARIS'` is true for every spelling of Paris).
CREATE MATERIALIZED VIEW city_group_expressions AS
SELECT (city || '!') COLLATE NOCASE AS shout, ('<' || code) COLLATE RTRIM AS tagged, city = 'PARIS' AS is_paris,
       COUNT(*) AS n
FROM cities GROUP BY city, code;

-- Subqueries in FROM and WITH over a collated group column show a row's
-- value too (`Paris`, not the key `paris`); the enclosing query compares it
-- under the column's collation (its WHERE, its joins, its own GROUP BY).
CREATE MATERIALIZED VIEW city_groups_in_from AS
SELECT g.city, g.n, g.city = 'PARIS' AS is_paris FROM (SELECT city, COUNT(*) AS n FROM cities GROUP BY city) AS g;

CREATE MATERIALIZED VIEW distinct_cities_in_with AS
WITH d AS (SELECT DISTINCT city FROM cities) SELECT city, (city || '?') COLLATE NOCASE AS asked FROM d;

CREATE MATERIALIZED VIEW city_group_joins AS
SELECT v.id, g.city, g.n FROM visits v JOIN (SELECT city, COUNT(*) AS n FROM cities GROUP BY city) AS g ON g.city = v.city;
