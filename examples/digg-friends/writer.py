#!/usr/bin/env python3
"""The Digg-like site's writes: random but realistic transactions against
the normalized tables of schema.sql, on the application's own connection
(denorm is not in the write path). Users digg and undigg items, follow and
unfollow each other (a follow back makes both rows mutual), rename
themselves and delete their account (ON DELETE CASCADE takes their diggs
and friendships); items are submitted, merged into an earlier submission of
the same story (their diggs move to it, a key change for friend_diggs) and
removed (their diggs go by ON DELETE CASCADE).

    python3 writer.py app.db [--transactions N] [--seed S]
"""

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))
import example_writer  # noqa: E402  (examples/example_writer.py: the driver all examples share)


WORDS = ["cassandra", "mysql", "scaling", "nosql", "friendfeed", "digg", "memcached", "sharding", "python", "php"]
HANDLES = ["kevin", "alexis", "robert", "leah", "jay", "diggnation", "newsjunkie", "coder", "mike", "anna"]


class App:
    def __init__(self, conn, rng):
        self.db = conn
        self.rng = rng
        self.minute = 12 * 60

    def pick(self, table, where="1"):
        """A random id of `table` among rows matching `where`, or None."""
        (n,) = self.db.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()
        if n == 0:
            return None
        query = f"SELECT id FROM {table} WHERE {where} ORDER BY id LIMIT 1 OFFSET ?"
        return self.db.execute(query, (self.rng.randrange(n),)).fetchone()[0]

    def next_id(self, table):
        return self.db.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()[0]

    def now(self):
        self.minute += self.rng.randint(1, 20)
        day, minute = 8 + self.minute // 1440, self.minute % 1440
        return f"2009-09-{min(day, 30):02d} {minute // 60:02d}:{minute % 60:02d}:00"

    def username(self):
        while True:
            name = f"{self.rng.choice(HANDLES)}{self.rng.randint(1, 9999)}"
            if self.db.execute("SELECT 1 FROM users WHERE username = ?", (name,)).fetchone() is None:
                return name

    # -- diggs -------------------------------------------------------------
    def digg(self):
        item, user = self.pick("items"), self.pick("users")
        if item is None:
            return self.submit()
        if user is not None:
            self.db.execute(
                "INSERT OR IGNORE INTO diggs (itemid, userid, digdate) VALUES (?, ?, ?)", (item, user, self.now())
            )

    def undigg(self):
        digg = self.pick("diggs")
        if digg is not None:
            self.db.execute("DELETE FROM diggs WHERE id = ?", (digg,))

    # -- friendships -------------------------------------------------------
    def follow(self):
        user, friend = self.pick("users"), self.pick("users")
        if user is None or user == friend:
            return
        back = self.db.execute("SELECT 1 FROM friends WHERE userid = ? AND friendid = ?", (friend, user)).fetchone()
        self.db.execute(
            "INSERT OR IGNORE INTO friends (userid, friendid, mutual, date_created) VALUES (?, ?, ?, ?)",
            (user, friend, int(back is not None), self.now()[:10]),
        )
        if back is not None:
            self.db.execute("UPDATE friends SET mutual = 1 WHERE userid = ? AND friendid = ?", (friend, user))

    def unfollow(self):
        friendship = self.pick("friends")
        if friendship is not None:
            user, friend = self.db.execute("SELECT userid, friendid FROM friends WHERE id = ?", (friendship,)).fetchone()
            self.db.execute("DELETE FROM friends WHERE id = ?", (friendship,))
            self.db.execute("UPDATE friends SET mutual = 0 WHERE userid = ? AND friendid = ?", (friend, user))

    # -- users -------------------------------------------------------------
    def sign_up(self):
        self.db.execute("INSERT INTO users (id, username) VALUES (?, ?)", (self.next_id("users"), self.username()))

    def rename(self):
        # Every friend_diggs and friend_lists row that shows the name changes.
        user = self.pick("users")
        if user is not None:
            self.db.execute("UPDATE users SET username = ? WHERE id = ?", (self.username(), user))

    def delete_account(self):
        # Deleting a referenced row: diggs and friendships go by ON DELETE
        # CASCADE, submitted items stay with submitted_by NULL.
        user = self.pick("users")
        if user is not None:
            self.db.execute("DELETE FROM users WHERE id = ?", (user,))

    # -- items -------------------------------------------------------------
    def submit(self):
        words = self.rng.sample(WORDS, 3)
        self.db.execute(
            "INSERT INTO items (id, title, url, submitted_by, submitted_at) VALUES (?, ?, ?, ?, ?)",
            (
                self.next_id("items"),
                " ".join(words).capitalize(),
                f"https://example.com/{'-'.join(words)}",
                self.pick("users"),
                self.now(),
            ),
        )

    def merge_duplicate(self):
        # The same story submitted twice: diggs move to the earlier item
        # (a digger of both keeps one digg), the duplicate goes.
        first, duplicate = self.pick("items"), self.pick("items")
        if first is None or first == duplicate:
            return
        self.db.execute("UPDATE OR IGNORE diggs SET itemid = ? WHERE itemid = ?", (first, duplicate))
        self.db.execute("DELETE FROM items WHERE id = ?", (duplicate,))

    def bury(self):
        item = self.pick("items")
        if item is not None:
            self.db.execute("DELETE FROM items WHERE id = ?", (item,))


ACTIONS = [
    (App.digg, 8),
    (App.undigg, 1),
    (App.follow, 4),
    (App.unfollow, 1),
    (App.sign_up, 1),
    (App.rename, 1),
    (App.delete_account, 0.3),
    (App.submit, 1),
    (App.merge_duplicate, 0.3),
    (App.bury, 0.15),
]


def main():
    example_writer.run(__doc__, App, ACTIONS, ("users", "items", "friends", "diggs"), foreign_keys=True)


if __name__ == "__main__":
    main()
