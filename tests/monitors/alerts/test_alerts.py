"""Alert policies against real servers on localhost: an HTTP webhook and an SMTP server."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest
from aiosmtpd.controller import Controller

from tracelake.jobs.cli import main
from tracelake.lineage import open_lakehouse
from tracelake.monitors.alerts.channels import SmtpChannel, WebhookChannel
from tracelake.monitors.alerts.manager import AlertManager, AlertPolicy


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list] = []
    fail_next = 0

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if _Hook.fail_next > 0:
            _Hook.fail_next -= 1
            self.send_response(500)
            self.end_headers()
            return
        _Hook.received.append({"body": body, "auth": self.headers.get("Authorization")})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    _Hook.received, _Hook.fail_next = [], 0
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Hook
    server.shutdown()


class _Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content.decode())
        return "250 OK"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    inbox = _Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()


POLICY = AlertPolicy("recall_sla", severity="error", runbook_url="https://runbooks.example/recall",
                     description="Tippers are being missed.")


def test_one_alert_per_condition_delivered_once_and_resolved(home, webhook, smtp):
    url, hook = webhook
    port, inbox = smtp
    lake = open_lakehouse(home)
    manager = AlertManager(lake, {"webhook": WebhookChannel(url, token="hook-token-123"),
                                  "email": SmtpChannel("127.0.0.1", port, "tracelake@test", ("oncall@test",))},
                           backoff_s=0.01)
    t0 = datetime(2026, 1, 20, 7, tzinfo=UTC)
    actions = [manager.observe(POLICY, "tip_predictions", True, f"recall {0.7 - i / 100:.2f} < 0.8", observed=0.7,
                               threshold=0.8, when=t0 + timedelta(days=i)) for i in range(3)]
    assert actions == ["opened", "repeated", "repeated"]
    (alert,) = manager.alerts()
    assert alert.status == "open" and alert.occurrences == 3 and alert.runbook_url == POLICY.runbook_url
    # Paged once, not three times, on each channel - with the runbook and the evidence.
    assert len(hook.received) == 1 and len(inbox.messages) == 1
    payload = hook.received[0]["body"]
    assert payload["alert"]["runbook"] == POLICY.runbook_url and "recall" in payload["text"]
    assert hook.received[0]["auth"] == "Bearer hook-token-123"
    assert "Runbook: https://runbooks.example/recall" in inbox.messages[0]
    assert manager.observe(POLICY, "tip_predictions", False, "recall 0.85", when=t0 + timedelta(days=3)) == "resolved"
    assert manager.alerts()[0].status == "resolved"
    assert len(hook.received) == 2 and "[RESOLVED]" in hook.received[1]["body"]["text"]
    # The same condition breaching again later is a new alert.
    assert manager.observe(POLICY, "tip_predictions", True, "recall 0.6", when=t0 + timedelta(days=9)) == "opened"
    assert len(manager.alerts()) == 2
    # Secrets stay out of the audit tables.
    lake.flush()
    assert not any(b"hook-token-123" in p.read_bytes() for p in __import__("pathlib").Path(home).rglob("*") if p.is_file())


def test_a_channel_that_fails_is_retried_recorded_and_never_crashes(home, webhook):
    url, hook = webhook
    hook.fail_next = 2  # two HTTP 500s, then success
    lake = open_lakehouse(home)
    dead = WebhookChannel("http://127.0.0.1:9/nowhere", timeout=0.5, name="dead")
    manager = AlertManager(lake, {"webhook": WebhookChannel(url), "dead": dead}, backoff_s=0.01)
    policy = AlertPolicy("volume", channels=("webhook", "dead"))
    assert manager.observe(policy, "cleaned_trips", True, "rows -45%") == "opened"
    (alert,) = manager.alerts()
    by_channel = {}
    for d in alert.deliveries:
        by_channel.setdefault(d["channel"], []).append(d)
    assert [d["delivered"] for d in by_channel["webhook"]] == [False, False, True]
    assert [d["delivered"] for d in by_channel["dead"]] == [False, False, False]
    assert all(d["error"] for d in by_channel["dead"])
    assert len(hook.received) == 1


def test_for_evaluations_waits_for_consecutive_breaches(home):
    manager = AlertManager(open_lakehouse(home))
    slow = AlertPolicy("latency", for_evaluations=2)
    assert manager.observe(slow, "c", True, "late") == "pending"
    assert manager.observe(slow, "c", False, "ok") == "cleared"
    assert manager.observe(slow, "c", True, "late") == "pending"
    assert manager.observe(slow, "c", True, "late again") == "opened"
    assert manager.alerts()[0].occurrences == 2


def test_ack_and_resolve_from_the_cli(home, capsys):
    manager = AlertManager(open_lakehouse(home))
    manager.observe(POLICY, "tip_predictions", True, "recall 0.6")
    alert_id = manager.alerts()[0].alert_id
    assert main(["--home", home, "alerts", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["alert_id"] == alert_id
    assert main(["--home", home, "alerts", "ack", alert_id, "--by", "alice"]) == 0
    assert manager.alerts()[0].status == "acknowledged"
    # Still breaching: counted on the acknowledged alert, no new page.
    assert manager.observe(POLICY, "tip_predictions", True, "recall 0.6") == "repeated"
    assert main(["--home", home, "alerts", "resolve", alert_id, "--reason", "retrained"]) == 0
    assert manager.alerts()[0].status == "resolved"
    capsys.readouterr()
    assert main(["--home", home, "alerts", "ack", alert_id]) == 2
    assert "only open alerts can be acknowledged" in capsys.readouterr().err
    assert main(["--home", home, "alerts", "ack", "01M89NX7GD0TTN4S8KR78GCTWH"]) == 2
