#!/usr/bin/env python3
# Usage: python3 scripts/ops-bench/recreated_table.py target/debug/denorm ROWS  (issue 13, helper ops; BENCHMARKS.md)
# Time from "table recreated" to its view serving the new rows, with a big
# other table beside it; prints the engine's log lines about what it read.
import json, os, tempfile, sqlite3, subprocess, sys, time, urllib.request, shutil, socket
binary, rows = sys.argv[1], int(sys.argv[2])
d = tempfile.mkdtemp(prefix="denorm-ops-bench-")
db = sqlite3.connect(f"{d}/app.db")
db.executescript("CREATE TABLE items (id INTEGER PRIMARY KEY, price INTEGER NOT NULL); CREATE TABLE other (id INTEGER PRIMARY KEY, v INTEGER, t TEXT); INSERT INTO items VALUES (1, 10);")
db.executemany("INSERT INTO other VALUES (?, ?, ?)", ((i, i % 97, f"row {i}") for i in range(rows)))
db.commit()
open(f"{d}/views.sql", "w").write("CREATE MATERIALIZED VIEW total AS SELECT sum(price) AS s FROM items;\nCREATE MATERIALIZED VIEW per_v AS SELECT v, count(*) AS n FROM other GROUP BY v;\nCREATE MATERIALIZED VIEW other_rows AS SELECT id, v, t FROM other;\n")
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
open(f"{d}/denorm.toml", "w").write(f'views = ["views.sql"]\n[source]\nurl = "sqlite://app.db"\n[server]\nlisten = "127.0.0.1:{port}"\n')
log = open(f"{d}/log", "w")
p = subprocess.Popen([binary, "run", "--config", f"{d}/denorm.toml"], stderr=log, stdout=log)
def get(path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}") as r: return json.load(r)
    except Exception: return None
while get("/views/total") != [{"s": 10}]: time.sleep(0.05)
while "snapshot written" not in open(f"{d}/log").read(): time.sleep(0.05)
db.executescript("DROP TABLE items; CREATE TABLE items (id INTEGER PRIMARY KEY, price INTEGER NOT NULL); INSERT INTO items VALUES (7, 70);")
t0 = time.time()
while get("/views/total") != [{"s": 70}]: time.sleep(0.005)
print(f"rows in other={rows}: recreated table served after {time.time()-t0:.2f} s")
p.terminate(); p.wait(); log.close()
for line in open(f"{d}/log"):
    if any(k in line for k in ("snapshot read", "snapshot written", "re-read only", "state loaded")):
        print("  ", line.strip()[:220])
shutil.rmtree(d)
