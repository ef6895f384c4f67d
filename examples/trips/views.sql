-- Duplicate tables per access pattern: the same trips, copied into one view
-- per query the app runs, each keyed so that its query is a key lookup or a
-- range of the view's index. The application writes each trip once, to
-- trips; denorm writes the copies.

-- "A driver's trips, newest first": ?driver_id=eq.1&order=started_on.desc.
CREATE MATERIALIZED VIEW trips_by_driver
  WITH (key = 'driver_id, started_on, trip_id', max_staleness = '1s')
AS SELECT t.driver_id,
          t.started_on,
          t.id AS trip_id,
          t.status,
          t.city,
          t.fare_cents,
          t.distance_km
   FROM trips t;

-- "A city's trips on a day": ?city=eq.Lisbon&started_on=eq.2025-01-15.
CREATE MATERIALIZED VIEW trips_by_city_date
  WITH (key = 'city, started_on, trip_id', max_staleness = '1s')
AS SELECT t.city,
          t.started_on,
          t.id AS trip_id,
          t.driver_id,
          t.status,
          t.fare_cents
   FROM trips t;

-- "A rider's trip history", with the driver's name copied onto each trip
-- (a driver's rename rewrites their trips here). LEFT JOIN: the trips of a
-- driver who left (whose row was deleted) stay, with driver_name NULL.
CREATE MATERIALIZED VIEW trips_by_rider
  WITH (key = 'rider_id, trip_id', max_staleness = '1s')
AS SELECT t.rider_id,
          t.id AS trip_id,
          t.started_on,
          t.city,
          t.status,
          t.fare_cents,
          d.name AS driver_name
   FROM trips t
   LEFT JOIN drivers d ON d.id = t.driver_id;

-- A driver's earnings per day, over completed trips only.
CREATE MATERIALIZED VIEW driver_daily_earnings
  WITH (max_staleness = '5s')
AS SELECT t.driver_id,
          t.started_on,
          COUNT(*) AS trips,
          SUM(t.fare_cents) AS fares_cents,
          SUM(t.distance_km) AS distance_km
   FROM trips t
   WHERE t.status = 'completed'
   GROUP BY t.driver_id, t.started_on;
