"""The terminal: `amanah chat` piped, `amanah customer show --json`, and the other commands' help."""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.conftest import AMANAH, amanah_env


def run(
    args: list[str], database_url: str, stdin: str = "", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AMANAH, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=amanah_env(database_url),
        timeout=timeout,
    )


def test_chat_reads_stdin_line_by_line_and_prints_each_reply(seeded_url: str) -> None:
    """Piped messages each get a reply, and the balance printed matches `customer show --json`."""
    shown = json.loads(run(["customer", "show", "layla", "--json"], seeded_url).stdout)
    out = run(["chat", "--customer", "layla"], seeded_url, stdin="hello\nwhat's my balance?\nthanks\n")
    assert out.returncode == 0, out.stderr
    assert "Hello" in out.stdout
    for account in shown["accounts"]:
        amount = Decimal(account["available"])
        assert f"{amount:,}" in out.stdout or f"{amount:,.2f}" in out.stdout
    assert "welcome" in out.stdout


def test_chat_in_arabic_from_the_terminal(seeded_url: str) -> None:
    """An Arabic line gets an Arabic reply in the terminal."""
    out = run(["chat", "--customer", "omar"], seeded_url, stdin="مرحبا\n")
    assert out.returncode == 0, out.stderr
    assert "أهلاً" in out.stdout


def test_chat_with_unknown_customer_fails_clearly(seeded_url: str) -> None:
    """An unknown customer gets a one-line error and a non-zero exit, no traceback."""
    out = run(["chat", "--customer", "mallory"], seeded_url, stdin="hi\n")
    assert out.returncode != 0
    assert "no customer named" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_customer_show_json_has_everything_an_operator_needs(seeded_url: str) -> None:
    """`customer show --json` lists accounts (IBAN, currency, balance), cards, payees and 20 transactions."""
    data = json.loads(run(["customer", "show", "sara", "--json"], seeded_url).stdout)
    assert {a["kind"] for a in data["accounts"]} == {"current", "savings"}
    assert all(len(c["last4"]) == 4 for c in data["cards"])
    assert 2 <= len(data["payees"]) <= 3
    assert len(data["transactions"]) == 20


def test_seed_is_idempotent_and_migrate_is_safe_twice(tmp_path: Path) -> None:
    """`migrate` twice and `seed --demo` twice leave one copy of the demo bank."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    assert run(["migrate"], url).returncode == 0
    assert run(["migrate"], url).returncode == 0
    assert "seeded the demo bank" in run(["seed", "--demo"], url).stdout
    assert "already seeded" in run(["seed", "--demo"], url).stdout
    data = json.loads(run(["customer", "show", "omar", "--json"], url).stdout)
    assert len(data["accounts"]) == 2


@pytest.mark.parametrize(
    "command",
    [["serve"], ["migrate"], ["seed"], ["chat"], ["customer", "show"], ["demo"]],
)
def test_every_command_has_help(command: list[str], tmp_path: Path) -> None:
    """Each command answers --help."""
    out = run([*command, "--help"], f"sqlite:///{tmp_path / 'h.db'}")
    assert out.returncode == 0
    assert "Usage" in out.stdout


def test_demo_command_creates_migrates_seeds_and_serves(tmp_path: Path) -> None:
    """`amanah demo` on a fresh SQLite file migrates, seeds and serves the web chat."""
    import time

    import httpx

    from tests.e2e.conftest import free_port

    port = free_port()
    db = tmp_path / "fresh" / "amanah.db"
    env = amanah_env(f"sqlite:///{db}", AMANAH_PORT=str(port))
    proc = subprocess.Popen([*AMANAH, "demo"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("amanah demo did not serve within 90 s")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", follow_redirects=True) as client:
            r = client.post("/login", data={"username": "sara", "password": "demo-sara-2026"})
            assert r.status_code == 200 and "chat" in r.text.lower()
            reply = client.post("/api/chat", json={"text": "balance"}).json()["reply"]
            assert "Current account" in reply["text"]
        assert db.exists()
    finally:
        proc.terminate()
        proc.wait(timeout=15)
