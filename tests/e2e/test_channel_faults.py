"""Crash tests: kill -9 the server (worker inside) or a separate worker in the middle of a load.

Real processes on loopback: the fake Graph API (posting signed echoes back, like Meta), `amanah serve`
and `amanah worker`. The load generator behaves like Meta: it retries a webhook until it gets a 200.
After the restart, every message that was acknowledged must get exactly one reply: none lost, none
doubled (a reply is identified by its outbox key, which names the inbox row it answers).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from amanah.adapters.channels.meta import hub_signature
from amanah.adapters.storage.db import make_engine
from amanah.adapters.storage.schema_channels import channel_inbox
from tests.e2e.conftest import AMANAH, amanah_env, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SECRET = "fault-test-app-secret"
PAGE = "1000000000000001"
MESSAGES = 120
USERS = 12
TEXTS = ("hi", "what are your opening hours?", "how do I report a lost card", "thanks", "what can you do")


@dataclass
class Stack:
    tmp: Path
    database_url: str
    server_port: int
    graph_port: int
    env: dict[str, str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def server(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    @property
    def graph(self) -> str:
        return f"http://127.0.0.1:{self.graph_port}"

    def start(self, name: str, *args: str) -> None:
        log = (self.tmp / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [*AMANAH, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def kill9(self, name: str) -> None:
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)

    def wait_up(self, url: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(url, timeout=1).status_code < 500:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        logs = {p.name: p.read_text(errors="replace")[-3000:] for p in self.tmp.glob("*.log")}
        raise RuntimeError(f"{url} did not come up: {logs}")


@pytest.fixture
def stack(seeded_url: str, tmp_path: Path) -> Iterator[Stack]:
    server_port, graph_port = free_port(), free_port()
    env = amanah_env(
        seeded_url,
        AMANAH_PORT=str(server_port),
        AMANAH_MESSENGER_APP_SECRET=SECRET,
        AMANAH_MESSENGER_VERIFY_TOKEN="fault-verify",
        AMANAH_MESSENGER_PAGE_ACCESS_TOKEN="fault-page-token",
        AMANAH_MESSENGER_APP_ID="555000111",
        AMANAH_MESSENGER_GRAPH_URL=f"http://127.0.0.1:{graph_port}/v23.0",
        AMANAH_WORKER_LEASE_S="2",
        AMANAH_OUTBOX_LEASE_S="3",
        AMANAH_GRAPH_TIMEOUT_S="1",
        AMANAH_OUTBOX_ECHO_WAIT_S="3",
        AMANAH_WORKER_POLL_INTERVAL_S="0.02",
    )
    s = Stack(tmp_path, seeded_url, server_port, graph_port, env)
    s.start(
        "fake",
        "fake-graph",
        "--port",
        str(graph_port),
        "--echo-webhook",
        f"http://127.0.0.1:{server_port}/webhooks/messenger",
    )
    s.wait_up(f"{s.graph}/_fake/calls?since=999999999")
    try:
        yield s
    finally:
        s.stop_all()


class Load(threading.Thread):
    """Posts MESSAGES signed events, retrying each until a 200 (as Meta does), records the acked mids."""

    def __init__(self, server: str, run: str) -> None:
        super().__init__(daemon=True)
        self.url = f"{server}/webhooks/messenger"
        self.run_id = run
        self.acked: list[str] = []
        self.failures = 0

    def run(self) -> None:
        with httpx.Client(timeout=5) as client:
            for i in range(MESSAGES):
                mid = f"m_fault_{self.run_id}_{i}"
                user = f"fault-user-{i % USERS}"
                deadline = time.monotonic() + 90
                while time.monotonic() < deadline:
                    now = int(time.time() * 1000)
                    item = {
                        "sender": {"id": user},
                        "recipient": {"id": PAGE},
                        "timestamp": now,
                        "message": {"mid": mid, "text": TEXTS[i % len(TEXTS)]},
                    }
                    body = json.dumps(
                        {"object": "page", "entry": [{"id": PAGE, "time": now, "messaging": [item]}]}
                    ).encode()
                    try:
                        response = client.post(
                            self.url,
                            content=body,
                            headers={
                                "Content-Type": "application/json",
                                "X-Hub-Signature-256": hub_signature(body, SECRET),
                            },
                        )
                        if response.status_code == 200:
                            self.acked.append(mid)
                            break
                    except httpx.HTTPError:
                        pass
                    self.failures += 1
                    time.sleep(0.1)
                time.sleep(0.01)


def _replies(stack: Stack) -> list[dict[str, Any]]:
    calls = httpx.get(f"{stack.graph}/_fake/calls", timeout=10).json()["calls"]
    return [
        c
        for c in calls
        if c["status"] == 200
        and isinstance(c["body"], dict)
        and "message" in c["body"]
        and str(c["body"]["message"].get("metadata", "")).endswith("#0")
    ]


def _mid_of_key(database_url: str) -> dict[str, str]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(channel_inbox.c.id, channel_inbox.c.dedup_key)).all()
    finally:
        engine.dispose()
    return {f"in{r.id}#0": r.dedup_key for r in rows}


def _wait_for_replies(stack: Stack, acked: list[str], timeout: float = 90) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    replies: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        replies = _replies(stack)
        if len({c["body"]["message"]["metadata"] for c in replies}) >= len(acked):
            time.sleep(4)  # anything sent twice would show up now (lease + echo wait)
            return _replies(stack)
        time.sleep(0.5)
    return replies


def _check_exactly_once(stack: Stack, acked: list[str]) -> None:
    replies = _wait_for_replies(stack, acked)
    keys = Counter(c["body"]["message"]["metadata"] for c in replies)
    doubled = {k: n for k, n in keys.items() if n > 1}
    assert not doubled, f"replies sent more than once: {doubled}"
    mids = _mid_of_key(stack.database_url)
    answered = Counter(mids.get(k) for k in keys)
    missing = [m for m in acked if answered.get(m, 0) == 0]
    assert not missing, f"{len(missing)} acknowledged messages got no reply: {missing[:5]}"
    assert all(answered[m] == 1 for m in acked)
    assert len(set(acked)) == MESSAGES


def test_server_killed_mid_load_loses_and_doubles_no_reply(stack: Stack) -> None:
    """kill -9 of `amanah serve` (worker inside) mid-load, then a restart: each acked message gets exactly one reply."""
    stack.start("server", "serve")
    stack.wait_up(f"{stack.server}/healthz")
    load = Load(stack.server, "srv")
    load.start()
    while len(load.acked) < MESSAGES // 3 and load.is_alive():
        time.sleep(0.02)
    stack.kill9("server")
    time.sleep(1.0)
    stack.start("server", "serve")
    stack.wait_up(f"{stack.server}/healthz")
    load.join(120)
    assert not load.is_alive()
    assert load.failures > 0  # the kill was felt by the load
    _check_exactly_once(stack, load.acked)


def test_worker_killed_mid_load_loses_and_doubles_no_reply(stack: Stack) -> None:
    """kill -9 of a separate `amanah worker` mid-load, then a restart: each acked message gets exactly one reply."""
    stack.start("server", "serve", "--no-worker")
    stack.wait_up(f"{stack.server}/healthz")
    stack.start("worker", "worker")
    load = Load(stack.server, "wrk")
    load.start()
    while len(load.acked) < MESSAGES // 3 and load.is_alive():
        time.sleep(0.02)
    stack.kill9("worker")
    time.sleep(0.5)
    stack.start("worker", "worker")
    load.join(120)
    assert not load.is_alive()
    _check_exactly_once(stack, load.acked)
    assert os.path.exists(stack.tmp / "worker.log")


def test_sender_process_killed_mid_load_loses_and_doubles_no_reply(stack: Stack) -> None:
    """Answering and sending in processes of their own (`amanah worker --role inbox|sender`): kill -9 of
    the sender mid-load, then a restart: each acked message gets exactly one reply."""
    stack.start("server", "serve", "--no-worker")
    stack.wait_up(f"{stack.server}/healthz")
    stack.start("inbox", "worker", "--role", "inbox")
    stack.start("sender", "worker", "--role", "sender")
    load = Load(stack.server, "snd")
    load.start()
    while len(load.acked) < MESSAGES // 3 and load.is_alive():
        time.sleep(0.02)
    stack.kill9("sender")
    time.sleep(0.5)
    stack.start("sender", "worker", "--role", "sender")
    load.join(120)
    assert not load.is_alive()
    _check_exactly_once(stack, load.acked)
