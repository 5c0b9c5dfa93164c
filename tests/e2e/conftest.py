"""A real `amanah serve` process on a free loopback port, on each storage backend."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

AMANAH = [sys.executable, "-m", "amanah.entrypoints.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    database_url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]


def amanah_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMANAH_")}
    env.update({"AMANAH_DATABASE_URL": database_url, "AMANAH_LOG_LEVEL": "WARNING", **extra})
    return env


def start_server(database_url: str, tmp: Path, **extra: str) -> LiveServer:
    port = free_port()
    env = amanah_env(database_url, AMANAH_PORT=str(port), **extra)
    log = (tmp / f"server-{port}.log").open("wb")
    proc = subprocess.Popen([*AMANAH, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {(tmp / f'server-{port}.log').read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return LiveServer(url, database_url, env, proc)
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start in 60 s")


@pytest.fixture
def live_server(seeded_url: str, tmp_path: Path) -> Iterator[LiveServer]:
    server = start_server(seeded_url, tmp_path)
    yield server
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
