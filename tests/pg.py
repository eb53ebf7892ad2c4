"""Start a throw-away PostgreSQL cluster on a free localhost port (Debian's `postgresql` package).

Used by tests that need a real server. As root, the server runs as the `postgres` user (it refuses root).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def find_bin(name: str) -> str | None:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else shutil.which(name)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TempPostgres:
    def __init__(self) -> None:
        self.initdb, self.pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if not self.initdb or not self.pg_ctl:
            raise FileNotFoundError("no PostgreSQL server binaries (apt-get install postgresql)")
        self.dir = Path(tempfile.mkdtemp(prefix="echobench-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def start(self) -> str:
        subprocess.run([*self.as_user, self.initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync"],
                       check=True, capture_output=True)
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run([*self.as_user, self.pg_ctl, "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"),
                        "-w", "-t", "60", "start"], check=True, capture_output=True)
        url_admin = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        import sqlalchemy as sa

        engine = sa.create_engine(url_admin, isolation_level="AUTOCOMMIT")
        for _ in range(50):
            try:
                with engine.connect() as c:
                    c.execute(sa.text("CREATE DATABASE echobench"))
                break
            except sa.exc.OperationalError:
                time.sleep(0.2)
        engine.dispose()
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/echobench"

    def stop(self) -> None:
        subprocess.run([*self.as_user, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
