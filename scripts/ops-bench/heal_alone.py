#!/usr/bin/env python3
# Usage: python3 scripts/ops-bench/heal_alone.py target/debug/denorm ROWS  (issue 13, helper ops; BENCHMARKS.md)
# Time from "the overflowing row deleted" to the failed view served again,
# with a big other table and view beside it (rebuilt too, or not).
import json, os, tempfile, sqlite3, subprocess, sys, time, urllib.request, shutil, socket
binary, rows = sys.argv[1], int(sys.argv[2])
d = tempfile.mkdtemp(prefix="denorm-ops-bench-")
db = sqlite3.connect(f"{d}/app.db")
db.executescript("CREATE TABLE big (id INTEGER PRIMARY KEY, v INTEGER NOT NULL); CREATE TABLE other (id INTEGER PRIMARY KEY, v INTEGER, t TEXT); INSERT INTO big VALUES (1, 5);")
db.executemany("INSERT INTO other VALUES (?, ?, ?)", ((i, i % 97, f"row {i}") for i in range(rows)))
db.commit()
open(f"{d}/views.sql", "w").write("CREATE MATERIALIZED VIEW big_sum AS SELECT sum(v) AS s FROM big;\nCREATE MATERIALIZED VIEW other_rows AS SELECT id, v, t FROM other;\n")
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
open(f"{d}/denorm.toml", "w").write(f'views = ["views.sql"]\n[source]\nurl = "sqlite://app.db"\n[server]\nlisten = "127.0.0.1:{port}"\n')
log = open(f"{d}/log", "w")
p = subprocess.Popen([binary, "run", "--config", f"{d}/denorm.toml"], stderr=log, stdout=log)
def get(path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}") as r: return json.load(r)
    except Exception: return None
while get("/views/big_sum") != [{"s": 5}]: time.sleep(0.05)
db.executescript("INSERT INTO big VALUES (3, 9223372036854775807);")
while get("/views/big_sum") is not None: time.sleep(0.02)
db.executescript("DELETE FROM big WHERE id = 3;")
t0 = time.time()
while get("/views/big_sum") != [{"s": 5}]: time.sleep(0.005)
print(f"rows in other={rows}: healed view served after {time.time()-t0:.2f} s")
p.terminate(); p.wait(); log.close()
for line in open(f"{d}/log"):
    if "state loaded" in line or "rebuilt alone" in line:
        print("  ", line.strip()[:200])
shutil.rmtree(d)
