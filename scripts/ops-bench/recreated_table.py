#!/usr/bin/env python3
# Usage: python3 scripts/ops-bench/recreated_table.py target/debug/denorm ROWS  (issue 13, helper ops; BENCHMARKS.md)
# Time from "table recreated" to its view serving the new rows, with a big
# other table beside it; prints the engine's log lines about what it read.
import os, sys, time
sys.path.insert(0, os.path.dirname(__file__))
from harness import Run

binary, rows = sys.argv[1], int(sys.argv[2])
run = Run(binary, rows, "CREATE TABLE items (id INTEGER PRIMARY KEY, price INTEGER NOT NULL); INSERT INTO items VALUES (1, 10);",
          "CREATE MATERIALIZED VIEW total AS SELECT sum(price) AS s FROM items;\n"
          "CREATE MATERIALIZED VIEW per_v AS SELECT v, count(*) AS n FROM other GROUP BY v;\n"
          "CREATE MATERIALIZED VIEW other_rows AS SELECT id, v, t FROM other;\n")
while run.get("/views/total") != [{"s": 10}]: time.sleep(0.05)
while "snapshot written" not in run.log_text(): time.sleep(0.05)
run.db.executescript("DROP TABLE items; CREATE TABLE items (id INTEGER PRIMARY KEY, price INTEGER NOT NULL); INSERT INTO items VALUES (7, 70);")
t0 = time.time()
while run.get("/views/total") != [{"s": 70}]: time.sleep(0.005)
print(f"rows in other={rows}: recreated table served after {time.time()-t0:.2f} s")
run.stop(("snapshot read", "snapshot written", "re-read only", "state loaded"))
