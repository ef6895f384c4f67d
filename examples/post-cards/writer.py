#!/usr/bin/env python3
"""The post-cards application's writes: random but realistic transactions
against the normalized tables of schema.sql, on the application's own
connection (denorm is not in the write path). Users sign up, rename
themselves and change or remove their avatar (renames fan out to every post
card), merge a duplicate account into another (its posts change author) and
delete their account (ON DELETE CASCADE takes their posts and likes); posts
are written, edited, moved to a new id and deleted; posts are liked and
unliked.

    python3 writer.py app.db [--transactions N] [--seed S]
"""

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))
import example_writer  # noqa: E402  (examples/example_writer.py: the driver all examples share)


FIRST = ["Sarah", "Omar", "Ines", "Kenji", "Amara", "Lukas", "Priya", "Mateo", "Yuki", "Noor", "Tom", "Zoe"]
LAST = ["Chen", "Haddad", "Duarte", "Sato", "Okafor", "Berg", "Nair", "Rossi", "Kim", "Ali"]
BODIES = [
    "Just shipped v{n}.0",
    "Anyone tried the new release?",
    "Coffee #{n} of the day",
    "Thread: lessons from {n} years of on-call",
    "Photos from the meetup",
    "Hiring! DM me",
]


class App:
    def __init__(self, conn, rng):
        self.db = conn
        self.rng = rng
        self.minute = 0

    def pick(self, table, column="id"):
        """A random existing `column` value of `table`, or None when it is empty."""
        (n,) = self.db.execute(f"SELECT count(*) FROM {table}").fetchone()
        if n == 0:
            return None
        query = f"SELECT {column} FROM {table} ORDER BY {column} LIMIT 1 OFFSET ?"
        return self.db.execute(query, (self.rng.randrange(n),)).fetchone()[0]

    def next_id(self, table):
        return self.db.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()[0]

    def now(self):
        self.minute += self.rng.randint(1, 30)
        return f"2025-02-{1 + self.minute // 1440 % 28:02d}T{self.minute // 60 % 24:02d}:{self.minute % 60:02d}:00Z"

    def name(self):
        return f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}"

    def avatar(self, name):
        if self.rng.random() < 0.25:
            return None
        return f"https://cdn.example.com/{name.split()[0].lower()}-{self.rng.randint(1, 999)}.jpg"

    # -- users -------------------------------------------------------------
    def sign_up(self):
        name = self.name()
        self.db.execute(
            "INSERT INTO users (id, name, avatar_url, created_at) VALUES (?, ?, ?, ?)",
            (self.next_id("users"), name, self.avatar(name), self.now()),
        )

    def rename(self):
        # The fan-out: every card of this user's posts carries the name.
        user = self.pick("users")
        if user is not None:
            self.db.execute("UPDATE users SET name = ? WHERE id = ?", (self.name(), user))

    def change_avatar(self):
        user = self.pick("users")
        if user is not None:
            (name,) = self.db.execute("SELECT name FROM users WHERE id = ?", (user,)).fetchone()
            self.db.execute("UPDATE users SET avatar_url = ? WHERE id = ?", (self.avatar(name), user))

    def merge_accounts(self):
        # A duplicate account is folded into another: its posts change author.
        keep, duplicate = self.pick("users"), self.pick("users")
        if keep is None or keep == duplicate:
            return
        self.db.execute("UPDATE posts SET author_id = ? WHERE author_id = ?", (keep, duplicate))
        self.db.execute(
            "UPDATE OR IGNORE likes SET user_id = ? WHERE user_id = ?", (keep, duplicate)
        )  # a like both accounts gave stays once
        self.db.execute("DELETE FROM users WHERE id = ?", (duplicate,))

    def delete_account(self):
        # Deleting a referenced row: ON DELETE CASCADE takes posts and likes.
        user = self.pick("users")
        if user is not None:
            self.db.execute("DELETE FROM users WHERE id = ?", (user,))

    # -- posts -------------------------------------------------------------
    def post(self):
        author = self.pick("users")
        if author is None:
            return self.sign_up()
        body = self.rng.choice(BODIES).format(n=self.rng.randint(2, 40))
        self.db.execute(
            "INSERT INTO posts (id, author_id, body, created_at) VALUES (?, ?, ?, ?)",
            (self.next_id("posts"), author, body, self.now()),
        )

    def edit_post(self):
        post = self.pick("posts")
        if post is not None:
            self.db.execute("UPDATE posts SET body = body || ' (edited)' WHERE id = ?", (post,))

    def renumber_post(self):
        # A key change (a post moved on import): likes follow by ON UPDATE CASCADE.
        post = self.pick("posts")
        if post is not None:
            self.db.execute("UPDATE posts SET id = ? WHERE id = ?", (self.next_id("posts"), post))

    def delete_post(self):
        post = self.pick("posts")
        if post is not None:
            self.db.execute("DELETE FROM posts WHERE id = ?", (post,))

    # -- likes -------------------------------------------------------------
    def like(self):
        post, user = self.pick("posts"), self.pick("users")
        if post is not None and user is not None:
            self.db.execute(
                "INSERT OR IGNORE INTO likes (post_id, user_id, liked_at) VALUES (?, ?, ?)", (post, user, self.now())
            )

    def unlike(self):
        post = self.pick("likes", "post_id")
        if post is not None:
            self.db.execute(
                "DELETE FROM likes WHERE post_id = ? AND user_id = (SELECT min(user_id) FROM likes WHERE post_id = ?)",
                (post, post),
            )


ACTIONS = [
    (App.sign_up, 1),
    (App.rename, 1.5),
    (App.change_avatar, 1),
    (App.merge_accounts, 0.3),
    (App.delete_account, 0.3),
    (App.post, 5),
    (App.edit_post, 1),
    (App.renumber_post, 0.5),
    (App.delete_post, 1),
    (App.like, 6),
    (App.unlike, 2),
]


def main():
    example_writer.run(__doc__, App, ACTIONS, ("users", "posts", "likes"), foreign_keys=True)


if __name__ == "__main__":
    main()
