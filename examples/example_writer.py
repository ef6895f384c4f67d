"""The driver every example's writer.py shares: command line, one
connection of its own (as the application has; denorm is not in the write
path), and N transactions of weighted random actions, each committed with
BEGIN IMMEDIATE (a deferred read-then-write transaction can fail with
SQLITE_BUSY_SNAPSHOT when another writer — denorm deleting applied
change-log rows — commits in between).

    python3 writer.py app.db [--transactions N] [--seed S]
"""

import argparse
import os
import random
import sqlite3
import sys


def run(doc, make_app, actions, count_tables, foreign_keys=False, summary=None):
    """Parses the command line and commits the transactions.

    `make_app(conn, rng)` builds the example's application object;
    `actions` lists (method, weight); each transaction runs 1 to 3 of them.
    The final line counts the rows of `count_tables`, plus `summary(conn,
    app)` when given."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("database", help="the SQLite file denorm.toml's [source] url points at (app.db)")
    parser.add_argument("--transactions", type=int, default=100, help="how many transactions to commit (100)")
    parser.add_argument("--seed", type=int, help="random seed, for a reproducible run")
    args = parser.parse_args()
    if not os.path.exists(args.database):
        sys.exit(f"{args.database} does not exist: `denorm run --config denorm.toml` creates it from schema.sql")

    rng = random.Random(args.seed)
    conn = sqlite3.connect(args.database, timeout=30, isolation_level=None)
    if foreign_keys:
        conn.execute("PRAGMA foreign_keys = ON")
    app = make_app(conn, rng)
    methods, weights = zip(*actions)
    for _ in range(args.transactions):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for action in rng.choices(methods, weights, k=rng.randint(1, 3)):
                action(app)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in count_tables}
    extra = f"; {summary(conn, app)}" if summary else ""
    print(f"committed {args.transactions} transactions; now {counts}{extra}")
