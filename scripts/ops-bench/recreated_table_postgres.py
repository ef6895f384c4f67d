#!/usr/bin/env python3
# Usage: DENORM_TEST_POSTGRES_URL=postgres://… python3 scripts/ops-bench/recreated_table_postgres.py target/debug/denorm ROWS
# (issue 13, helper ops; BENCHMARKS.md). PostgreSQL: a big `other` table
# beside `items`; items is recreated with another column while denorm is
# down. Prints the restart that reads items alone (temporary slot, kept
# slot) beside a restart from an emptied state directory (a full snapshot,
# what every such restart did before), with the rows read, the time to the
# recreated table's view serving, and other's seq_scan count.
import json, os, re, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.request

binary, rows = sys.argv[1], int(sys.argv[2])
server = os.environ["DENORM_TEST_POSTGRES_URL"]
database = "denorm_ops_bench"
url = server.rsplit("/", 1)[0] + "/" + database


def psql(target, sql):
    return subprocess.run(["psql", "-qAtX", "-v", "ON_ERROR_STOP=1", target, "-c", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


psql(server, f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{database}'")
psql(server, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
psql(server, f"CREATE DATABASE {database} TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'")
psql(url, "CREATE TABLE other (id bigint PRIMARY KEY, v integer, t text); ALTER TABLE other REPLICA IDENTITY FULL;"
          f"INSERT INTO other SELECT g, g % 97, 'row ' || g FROM generate_series(1, {rows}) g;"
          "CREATE TABLE items (id bigint PRIMARY KEY, price integer NOT NULL); ALTER TABLE items REPLICA IDENTITY FULL;"
          "INSERT INTO items VALUES (1, 10);")
psql(url, "VACUUM ANALYZE other")
project = tempfile.mkdtemp(prefix="denorm-ops-bench-")
open(f"{project}/views.sql", "w").write(
    "CREATE MATERIALIZED VIEW total AS SELECT sum(price) AS s FROM items;\n"
    "CREATE MATERIALIZED VIEW per_v AS SELECT v, count(*) AS n FROM other GROUP BY v;\n"
    "CREATE MATERIALIZED VIEW other_rows AS SELECT id, v, t FROM other;\n")
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
open(f"{project}/denorm.toml", "w").write(
    f'views = ["views.sql"]\n[source]\nurl = "{url}"\nslot = "{database}"\npublication = "{database}"\n'
    f'[server]\nlisten = "127.0.0.1:{port}"\n')


def get(path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}") as r: return json.load(r)
    except Exception: return None


def seq_scans():
    time.sleep(1.5)  # a backend's statistics reach the collector as it exits
    return int(psql(url, "SELECT seq_scan FROM pg_stat_user_tables WHERE relname = 'other'"))


def start(expected, until):
    """Starts denorm; returns (seconds until /views/total == expected, the log once `until` is in it)."""
    log = f"{project}/log"
    process = subprocess.Popen([binary, "run", "--config", f"{project}/denorm.toml"],
                               stdout=open(log, "w"), stderr=subprocess.STDOUT)
    t0 = time.time()
    while get("/views/total") != expected: time.sleep(0.005)
    served = time.time() - t0
    while until not in open(log).read(): time.sleep(0.05)
    process.send_signal(signal.SIGTERM); process.wait()
    return served, open(log).read()


def field(text, line_key, name):
    line = next(l for l in text.splitlines() if line_key in l)
    return re.search(rf"\b{name}=(\S+)", line).group(1)


start([{"s": 10}], "snapshot written")
psql(url, "DROP TABLE items; CREATE TABLE items (id bigint PRIMARY KEY, price integer NOT NULL, note text);"
          "ALTER TABLE items REPLICA IDENTITY FULL; INSERT INTO items VALUES (7, 70, 'x');")
before = seq_scans()
served, log = start([{"s": 70}], "re-read only")
if os.environ.get("OPS_BENCH_LOG"): print(log)
after = seq_scans()
print(f"rows in other={rows}")
print(f"  items recreated, restart: view served after {served:.2f} s; rows read {field(log, 're-read only', 'rows_read')} "
      f"(read={field(log, 're-read only', 'read')}); other scanned {after - before}×; "
      f"reshape took {float(field(log, 're-read only', 'seconds')):.2f} s")
shutil.rmtree(f"{project}/denorm.state")
before = seq_scans()
served, log = start([{"s": 70}], "snapshot written")
after = seq_scans()
print(f"  state directory emptied (full snapshot): view served after {served:.2f} s; rows read "
      f"{field(log, 'snapshot read', 'rows')}; other scanned {after - before}×; "
      f"snapshot read in {float(field(log, 'snapshot read', 'read_seconds')):.2f} s, "
      f"written in {float(field(log, 'snapshot written', 'write_seconds')):.2f} s")
shutil.rmtree(project)
psql(server, f"SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '{database}'")
psql(server, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
