# Shared by the ops benchmarks (issue 13; BENCHMARKS.md): a throwaway
# project — a SQLite database with a big `other` table beside the tables
# under test, a views file, a config on a free port — and `denorm run` on it.
import json, socket, sqlite3, subprocess, tempfile, shutil, urllib.request

OTHER = "CREATE TABLE other (id INTEGER PRIMARY KEY, v INTEGER, t TEXT);"


class Run:
    def __init__(self, binary, rows, schema, views):
        self.dir = tempfile.mkdtemp(prefix="denorm-ops-bench-")
        self.db = sqlite3.connect(f"{self.dir}/app.db")
        self.db.executescript(OTHER + schema)
        self.db.executemany("INSERT INTO other VALUES (?, ?, ?)", ((i, i % 97, f"row {i}") for i in range(rows)))
        self.db.commit()
        open(f"{self.dir}/views.sql", "w").write(views)
        s = socket.socket(); s.bind(("127.0.0.1", 0)); self.port = s.getsockname()[1]; s.close()
        open(f"{self.dir}/denorm.toml", "w").write(
            f'views = ["views.sql"]\n[source]\nurl = "sqlite://app.db"\n[server]\nlisten = "127.0.0.1:{self.port}"\n')
        self.log = open(f"{self.dir}/log", "w")
        self.process = subprocess.Popen([binary, "run", "--config", f"{self.dir}/denorm.toml"], stderr=self.log, stdout=self.log)

    def get(self, path):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}") as r: return json.load(r)
        except Exception: return None

    def log_text(self):
        return open(f"{self.dir}/log").read()

    def stop(self, keys):
        """Stops denorm, prints its log lines holding any of `keys`, removes the project."""
        self.process.terminate(); self.process.wait(); self.log.close()
        for line in open(f"{self.dir}/log"):
            if any(k in line for k in keys):
                print("  ", line.strip()[:220])
        shutil.rmtree(self.dir)
