#!/usr/bin/env python3
# Usage: python3 scripts/ops-bench/heal_alone.py target/debug/denorm ROWS  (issue 13, helper ops; BENCHMARKS.md)
# Time from "the overflowing row deleted" to the failed view served again,
# with a big other table and view beside it (rebuilt too, or not).
import os, sys, time
sys.path.insert(0, os.path.dirname(__file__))
from harness import Run

binary, rows = sys.argv[1], int(sys.argv[2])
run = Run(binary, rows, "CREATE TABLE big (id INTEGER PRIMARY KEY, v INTEGER NOT NULL); INSERT INTO big VALUES (1, 5);",
          "CREATE MATERIALIZED VIEW big_sum AS SELECT sum(v) AS s FROM big;\n"
          "CREATE MATERIALIZED VIEW other_rows AS SELECT id, v, t FROM other;\n")
while run.get("/views/big_sum") != [{"s": 5}]: time.sleep(0.05)
run.db.executescript("INSERT INTO big VALUES (3, 9223372036854775807);")
while run.get("/views/big_sum") is not None: time.sleep(0.02)
run.db.executescript("DELETE FROM big WHERE id = 3;")
t0 = time.time()
while run.get("/views/big_sum") != [{"s": 5}]: time.sleep(0.005)
print(f"rows in other={rows}: healed view served after {time.time()-t0:.2f} s")
run.stop(("state loaded", "rebuilt alone"))
