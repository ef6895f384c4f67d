#!/usr/bin/env python3
"""The home-feed application's writes: random but realistic transactions
against the normalized tables of schema.sql, on the application's own
connection (denorm is not in the write path). People sign up and follow
others by preferential attachment (the popular get more popular: follower
counts stay a power law), unfollow, and a "bandwagon" of follows or
unfollows hits authors near the fanout_limit so they cross it both ways;
posts are written (celebrities post most), edited and deleted; users rename
themselves, change their avatar and delete their account (ON DELETE CASCADE
takes their posts and follows).

    python3 writer.py app.db [--transactions N] [--seed S]
"""

import sys as _sys
from pathlib import Path as _Path

_sys.path.insert(0, str(_Path(__file__).resolve().parent.parent))
import example_writer  # noqa: E402  (examples/example_writer.py: the driver all examples share)


FANOUT_LIMIT = 20  # views.sql's fanout_limit: more followers than this is a celebrity
FIRST = ["Sarah", "Omar", "Ines", "Kenji", "Amara", "Lukas", "Priya", "Mateo", "Yuki", "Noor", "Tom", "Zoe"]
LAST = ["Chen", "Haddad", "Duarte", "Sato", "Okafor", "Berg", "Nair", "Rossi", "Kim", "Ali"]
BODIES = [
    "Just shipped v{n}.0",
    "Anyone tried the new release?",
    "Coffee #{n} of the day",
    "Thread: lessons from {n} years of on-call",
    "Photos from the meetup",
    "New video is up ({n} min)",
    "Tour dates announced: {n} cities",
]


class App:
    def __init__(self, conn, rng):
        self.db = conn
        self.rng = rng
        # Minutes since 2025-02-01T00:00 (28-day months), continuing after
        # the newest post, so a second run's posts are newer still.
        (last,) = conn.execute("SELECT max(created_at) FROM posts").fetchone()
        last = last or "2025-02-01T00:00:00Z"
        month, day, hour, minute = int(last[5:7]), int(last[8:10]), int(last[11:13]), int(last[14:16])
        self.minute = (month - 2) * 40320 + (day - 1) * 1440 + hour * 60 + minute
        self.crossings = 0

    def pick(self, table, column="id"):
        """A random existing `column` value of `table`, or None when it is empty."""
        (n,) = self.db.execute(f"SELECT count(*) FROM {table}").fetchone()
        if n == 0:
            return None
        query = f"SELECT {column} FROM {table} ORDER BY {column} LIMIT 1 OFFSET ?"
        return self.db.execute(query, (self.rng.randrange(n),)).fetchone()[0]

    def popular(self):
        """A user picked with probability proportional to followers + 1."""
        rows = self.db.execute(
            "SELECT u.id, count(f.follower_id) + 1 FROM users u LEFT JOIN follows f ON f.followee_id = u.id GROUP BY u.id"
        ).fetchall()
        if not rows:
            return None
        ids, weights = zip(*rows)
        return self.rng.choices(ids, weights)[0]

    def followers(self, user):
        return self.db.execute("SELECT count(*) FROM follows WHERE followee_id = ?", (user,)).fetchone()[0]

    def next_id(self, table):
        return self.db.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}").fetchone()[0]

    def now(self):
        # Every timestamp is distinct and later than the previous one.
        self.minute += self.rng.randint(1, 20)
        m = self.minute
        return f"2025-{2 + m // 40320:02d}-{1 + m // 1440 % 28:02d}T{m // 60 % 24:02d}:{m % 60:02d}:00Z"

    def name(self):
        return f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}"

    # -- users -------------------------------------------------------------
    def sign_up(self):
        name = self.name()
        user = self.next_id("users")
        avatar = None if self.rng.random() < 0.25 else f"https://cdn.example.com/{user}.jpg"
        self.db.execute(
            "INSERT INTO users (id, name, avatar_url, created_at) VALUES (?, ?, ?, ?)", (user, name, avatar, self.now())
        )
        # A new account follows a few suggested (popular) people.
        for _ in range(self.rng.randint(1, 4)):
            self.follow(user)

    def rename(self):
        # A celebrity's rename is one row of content; anyone else's rewrites
        # the copies in every follower's feed.
        user = self.popular() if self.rng.random() < 0.5 else self.pick("users")
        if user is not None:
            self.db.execute("UPDATE users SET name = ? WHERE id = ?", (self.name(), user))

    def change_avatar(self):
        user = self.pick("users")
        if user is not None:
            avatar = None if self.rng.random() < 0.25 else f"https://cdn.example.com/{user}-{self.rng.randint(1, 999)}.jpg"
            self.db.execute("UPDATE users SET avatar_url = ? WHERE id = ?", (avatar, user))

    def delete_account(self):
        # ON DELETE CASCADE takes the user's posts and follows both ways.
        user = self.pick("users")
        if user is not None and user > 3:
            self.db.execute("DELETE FROM users WHERE id = ?", (user,))

    # -- follows -----------------------------------------------------------
    def follow(self, follower=None):
        follower = follower or self.pick("users")
        followee = self.popular()
        if follower is None or followee is None or follower == followee:
            return
        before = self.followers(followee)
        self.db.execute(
            "INSERT OR IGNORE INTO follows (follower_id, followee_id, created_at) VALUES (?, ?, ?)",
            (follower, followee, self.now()),
        )
        self.count_crossing(before, self.followers(followee))

    def unfollow(self):
        follower = self.pick("follows", "follower_id")
        if follower is None:
            return
        (followee,) = self.db.execute(
            "SELECT followee_id FROM follows WHERE follower_id = ? ORDER BY random() LIMIT 1", (follower,)
        ).fetchone()
        before = self.followers(followee)
        self.db.execute("DELETE FROM follows WHERE follower_id = ? AND followee_id = ?", (follower, followee))
        self.count_crossing(before, before - 1)

    def bandwagon(self):
        # An author near the limit gains or loses a few followers at once (a
        # viral post, a scandal): they cross fanout_limit one way or the other.
        near = self.db.execute(
            "SELECT followee_id, count(*) AS n FROM follows GROUP BY followee_id HAVING n BETWEEN ? AND ?",
            (FANOUT_LIMIT - 4, FANOUT_LIMIT + 4),
        ).fetchall()
        if not near:
            return self.follow()
        author, n = self.rng.choice(near)
        k = self.rng.randint(1, 5)
        if self.rng.random() < 0.5:
            fans = self.db.execute(
                "SELECT id FROM users WHERE id <> ? AND id NOT IN (SELECT follower_id FROM follows WHERE followee_id = ?)"
                " ORDER BY random() LIMIT ?",
                (author, author, k),
            ).fetchall()
            for (fan,) in fans:
                self.db.execute(
                    "INSERT INTO follows (follower_id, followee_id, created_at) VALUES (?, ?, ?)", (fan, author, self.now())
                )
        else:
            self.db.execute(
                "DELETE FROM follows WHERE followee_id = ? AND follower_id IN"
                " (SELECT follower_id FROM follows WHERE followee_id = ? ORDER BY random() LIMIT ?)",
                (author, author, k),
            )
        self.count_crossing(n, self.followers(author))

    def count_crossing(self, before, after):
        if (before > FANOUT_LIMIT) != (after > FANOUT_LIMIT):
            self.crossings += 1

    # -- posts -------------------------------------------------------------
    def post(self):
        author = self.popular() if self.rng.random() < 0.6 else self.pick("users")
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

    def delete_post(self):
        post = self.pick("posts")
        if post is not None:
            self.db.execute("DELETE FROM posts WHERE id = ?", (post,))


ACTIONS = [
    (App.sign_up, 0.5),
    (App.rename, 1),
    (App.change_avatar, 0.5),
    (App.delete_account, 0.2),
    (App.follow, 4),
    (App.unfollow, 3),
    (App.bandwagon, 1.5),
    (App.post, 5),
    (App.edit_post, 1),
    (App.delete_post, 1.5),
]


def summary(conn, app):
    (celebrities,) = conn.execute(
        "SELECT count(*) FROM (SELECT followee_id FROM follows GROUP BY followee_id HAVING count(*) > ?)", (FANOUT_LIMIT,)
    ).fetchone()
    return f"{celebrities} authors above fanout_limit {FANOUT_LIMIT}; {app.crossings} threshold crossings"


def main():
    example_writer.run(__doc__, App, ACTIONS, ("users", "follows", "posts"), foreign_keys=True, summary=summary)


if __name__ == "__main__":
    main()
