#!/usr/bin/env python3
"""FriendFeed-style writes: random but realistic transactions against the
schema-less `entities` table of schema.sql, on the application's own
connection (denorm is not in the write path). Entries are posted with a JSON
body, edited (sometimes gaining a property no entry had before: no
migration), commented on and liked (each bumps `updated`, moving the entry
to the front of its indexes), moved to another feed, and deleted.

    python3 writer.py app.db [--transactions N] [--seed S]
"""

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))
import example_writer  # noqa: E402  (examples/example_writer.py: the driver all examples share)

import json

TITLES = [
    "Reading: {w} at scale",
    "Photos from {w}",
    "Is anyone else seeing {w} errors?",
    "Great talk on {w}",
    "Café talk about {w} ☕",
    "Überblick: {w}",
]
WORDS = ["MySQL", "Tornado", "memcached", "Python", "SXSW", "Palo Alto", "sharding", "schema-less"]
COMMENTS = ["+1", "Nice!", "Where is this?", "Same here", "Thanks for sharing", "😂"]
FEEDS = [100, 101, 102]  # rooms; a user's own feed has the user's id


class App:
    def __init__(self, conn, rng):
        self.db = conn
        self.rng = rng
        self.second = 12 * 3600

    def pick(self):
        """A random entity: (id, body as a dict), or None when there is none."""
        (n,) = self.db.execute("SELECT count(*) FROM entities").fetchone()
        if n == 0:
            return None
        row = self.db.execute("SELECT id, body FROM entities ORDER BY id LIMIT 1 OFFSET ?", (self.rng.randrange(n),))
        entity, body = row.fetchone()
        return entity, json.loads(body)

    def now(self):
        self.second += self.rng.randint(1, 600)
        day, second = 27 + self.second // 86400, self.second % 86400
        return f"2009-{2 + (day - 1) // 28:02d}-{(day - 1) % 28 + 1:02d} {second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"

    def save(self, entity, body):
        self.db.execute(
            "UPDATE entities SET body = ?, updated = ? WHERE id = ?",
            (json.dumps(body, ensure_ascii=False), self.now(), entity),
        )

    def post(self):
        user = self.rng.randint(1, 8)
        body = {"title": self.rng.choice(TITLES).format(w=self.rng.choice(WORDS)), "comments": [], "likes": 0}
        if self.rng.random() < 0.5:
            body["link"] = f"https://example.com/{self.rng.getrandbits(32):08x}"
        self.db.execute(
            "INSERT INTO entities (id, user_id, feed_id, updated, body) VALUES (?, ?, ?, ?, ?)",
            (
                f"{self.rng.getrandbits(128):032x}",
                user,
                self.rng.choice(FEEDS + [user]),
                self.now(),
                json.dumps(body, ensure_ascii=False),
            ),
        )

    def edit(self):
        picked = self.pick()
        if picked is not None:
            entity, body = picked
            body["title"] = body["title"] + " (edited)"
            if self.rng.random() < 0.3:
                # A property no entry had: the "schema" changes without a migration.
                body["via"] = self.rng.choice(["web", "sms", "api"])
            self.save(entity, body)

    def comment(self):
        picked = self.pick()
        if picked is not None:
            entity, body = picked
            body["comments"].append({"user_id": self.rng.randint(1, 8), "text": self.rng.choice(COMMENTS)})
            self.save(entity, body)

    def like(self):
        picked = self.pick()
        if picked is not None:
            entity, body = picked
            body["likes"] += 1
            self.save(entity, body)

    def move_to_feed(self):
        # A key change in entities_by_feed: the entry moves to another feed.
        picked = self.pick()
        if picked is not None:
            self.db.execute("UPDATE entities SET feed_id = ? WHERE id = ?", (self.rng.choice(FEEDS), picked[0]))

    def delete(self):
        picked = self.pick()
        if picked is not None:
            self.db.execute("DELETE FROM entities WHERE id = ?", (picked[0],))


ACTIONS = [
    (App.post, 5),
    (App.edit, 1),
    (App.comment, 3),
    (App.like, 3),
    (App.move_to_feed, 0.7),
    (App.delete, 1.2),
]


def main():
    example_writer.run(__doc__, App, ACTIONS, ("entities",))


if __name__ == "__main__":
    main()
