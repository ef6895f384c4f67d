-- The normalized source of truth of a ride-hailing service: drivers, riders
-- and one trips table. The application writes only these tables; denorm
-- keeps the per-access-pattern copies in views.sql up to date.
-- denorm.toml's `[source] init` runs this file once to create app.db when it
-- does not exist.
--
-- Foreign keys are declared but not enforced (SQLite's default): when a
-- driver leaves, their row is deleted and their past trips stay.

CREATE TABLE drivers (
    id     INTEGER PRIMARY KEY,
    name   TEXT NOT NULL,
    city   TEXT NOT NULL
);

CREATE TABLE riders (
    id     INTEGER PRIMARY KEY,
    name   TEXT NOT NULL
);

CREATE TABLE trips (
    id           INTEGER PRIMARY KEY,
    driver_id    INTEGER NOT NULL REFERENCES drivers (id),
    rider_id     INTEGER NOT NULL REFERENCES riders (id),
    city         TEXT NOT NULL,
    started_on   TEXT NOT NULL,   -- YYYY-MM-DD
    status       TEXT NOT NULL CHECK (status IN ('requested', 'in_progress', 'completed', 'cancelled')),
    fare_cents   INTEGER,         -- NULL until completed
    distance_km  REAL             -- NULL until completed
);

INSERT INTO drivers (id, name, city) VALUES
    (1, 'Omar Haddad', 'Lisbon'),
    (2, 'Ines Duarte', 'Lisbon'),
    (3, 'Kenji Sato', 'Porto');

INSERT INTO riders (id, name) VALUES
    (1, 'Sarah Chen'), (2, 'Amara Okafor'), (3, 'Lukas Berg');

INSERT INTO trips (id, driver_id, rider_id, city, started_on, status, fare_cents, distance_km) VALUES
    (1, 1, 1, 'Lisbon', '2025-01-15', 'completed', 1250, 6.2),
    (2, 1, 3, 'Lisbon', '2025-01-15', 'completed', 830, 3.9),
    (3, 3, 1, 'Porto', '2025-01-16', 'completed', 1540, 8.0),
    (4, 2, 2, 'Lisbon', '2025-01-16', 'in_progress', NULL, NULL);
