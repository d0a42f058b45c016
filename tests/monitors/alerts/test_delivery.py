"""Alerts must not be lost: every hostile channel kind, against real servers on 127.0.0.1.

Each kind goes through the same story, with the real monitoring pass (``watch``) and channels
built the way the monitoring job builds them (``AlertChannelsResource.configure``):

1. the condition breaches: the alert opens, delivery fails - recorded with the reason, the pass
   returns normally within a bounded time;
2. still breaching (the "repeated" path): the page is retried, and fails again (recorded);
3. the channel recovers: the page is delivered, once;
4. the condition clears: the resolution is delivered once, the opening is not sent again.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tracelake.jobs.cli import main
from tracelake.lineage import open_lakehouse
from tracelake.monitors.alerts.channels import AlertChannelsResource, ChannelConfigError, WebhookChannel
from tracelake.monitors.alerts.delivery import GRACE_S
from tracelake.monitors.alerts.manager import AlertManager, AlertPolicy
from tracelake.monitors.alerts.outbox import retry_delay
from tracelake.monitors.alerts.sla import SLAResult
from tracelake.monitors.alerts.watch import watch
from tracelake.monitors.audit_tables import ALERTS

TIMEOUT = 1.5                        # total deadline per delivery attempt in these tests
BOUND = TIMEOUT + GRACE_S + 2.5      # a whole pass, with a dead channel: one deadline plus overhead
TOKEN = "hook-token-s3cr3t-7f9a"
SECRET_PATH = "/services/T0001/B0002/XyZsecretPathPart42"
POLICY = AlertPolicy("recall_sla", severity="error", runbook_url="https://runbooks.example/recall",
                     description="Tippers are being missed.")


@dataclass
class StubSLA:
    """An SLA whose verdict the test sets (the monitoring pass needs nothing else)."""

    name: str = "recall"
    component: str = "tip_predictions"
    policy: AlertPolicy = POLICY
    description: str = "recall >= 0.8"
    breached: bool = True
    evaluations: list = field(default_factory=list)

    def evaluate(self, lake, now):
        self.evaluations.append(now)
        return SLAResult(self.name, self.component, self.breached, True, 0.6 if self.breached else 0.9, 0.8,
                         "recall 0.60 < 0.80" if self.breached else "recall 0.90")


def _pass(home, resource: AlertChannelsResource, sla, **settings):
    """One monitoring pass as the job runs it: channels configured (errors recorded), then watch."""
    lake = open_lakehouse(home)
    config = resource.configure()
    manager = AlertManager(lake, config.channels, backoff_s=0.05, timeout_s=TIMEOUT, retry_base_s=0, **settings)
    manager.record_configuration(config.errors)
    start = time.monotonic()
    report = watch(lake, slas=[sla], manager=manager)
    return report, time.monotonic() - start, manager, config


def _entries(manager, channel):
    return [e for a in manager.alerts() for e in a.outbox if e.channel == channel]


def _rows(manager, event):
    events = manager.events()
    return events[events["event"] == event]


def _action(report):
    return [a for _, _, a in report.alert_actions]


# -- the hostile kinds ------------------------------------------------------------------------------

class _Webhook:
    channel = "webhook"

    def __init__(self, hostile, kind):
        self.kind, self.hostile = kind, hostile
        self.port = hostile.free_port()
        self.server = None
        mode = {"garbage": "garbage", "silent": "silent", "drip": "drip", "http500": "http500"}.get(kind)
        if mode:
            self.server = hostile(mode, self.port)
        elif kind in ("file_url", "data_url"):
            self.server = hostile("ok", self.port)    # where the configuration will point once fixed
        self.fixed = False

    def resource(self):
        url = f"http://127.0.0.1:{self.port}{SECRET_PATH}"
        if not self.fixed and self.kind == "file_url":
            url = "file:///etc/passwd"
        elif not self.fixed and self.kind == "data_url":
            url = f"data:text/plain,{TOKEN}"
        return AlertChannelsResource(webhook_url=url, webhook_token=TOKEN)

    def recover(self):
        self.fixed = True
        if self.server is None:          # connection refused until now: start listening on that port
            self.server = self.hostile("ok", self.port)
        self.server.mode = "ok"

    def accepted(self):
        return [] if self.server is None else [p["body"]["alert"]["delivery_id"] for p in self.server.accepted]

    def idempotency_keys(self):
        return [] if self.server is None else [p["headers"].get("idempotency-key") for p in self.server.accepted]


class _Email:
    channel = "email"

    def __init__(self, smtp_server, kind):
        self.port, self.inbox = smtp_server
        self.kind = kind
        self.inbox.refuse = kind == "smtp_refuses"
        self.fixed = False

    def resource(self):
        to = None if self.kind == "smtp_misconfigured" and not self.fixed else ["oncall@test"]
        return AlertChannelsResource(smtp_host="127.0.0.1", smtp_port=self.port, smtp_from="tracelake@test", smtp_to=to)

    def recover(self):
        self.fixed = True
        self.inbox.refuse = False

    def accepted(self):
        out = []
        for m in self.inbox.messages:
            body = m.split("\n\n", 1)[1] if "\n\n" in m else m
            out.append(json.loads(body[body.index("{"):])["delivery_id"])
        return out

    def idempotency_keys(self):
        return [line.split("<", 1)[1].split("@", 1)[0] for m in self.inbox.messages for line in m.splitlines()
                if line.lower().startswith("message-id:")]


# kind -> (the reason recorded, configuration error reported at start-up?)
KINDS = {
    "file_url": ("configuration: webhook URL scheme 'file' is not allowed: only http and https", True),
    "data_url": ("configuration: webhook URL scheme 'data' is not allowed: only http and https", True),
    "garbage": ("BadStatusLine", False),
    "silent": (f"deadline exceeded: no complete answer within {TIMEOUT:g} s", False),
    "drip": (f"deadline exceeded: no complete answer within {TIMEOUT:g} s", False),
    "http500": ("webhook answered HTTP 500 Internal Server Error", False),
    "refused": ("ConnectionRefusedError", False),
    "smtp_misconfigured": ("configuration: SMTP host is set but no recipient", True),
    "smtp_refuses": ("SMTPRecipientsRefused", False),
}


@pytest.fixture
def channel_case(request, hostile, smtp_server):
    kind = request.param
    return kind, (_Email(smtp_server, kind) if kind.startswith("smtp") else _Webhook(hostile, kind))


@pytest.mark.parametrize("channel_case", list(KINDS), indirect=True)
def test_a_hostile_channel_loses_no_page(home, channel_case):
    kind, case = channel_case
    reason, config_error = KINDS[kind]
    sla = StubSLA()

    # 1. The alert opens; delivery fails: recorded with the reason, the pass returns, in bounded time.
    report, elapsed, manager, config = _pass(home, case.resource(), sla)
    assert _action(report) == ["opened"]
    assert elapsed < BOUND, f"{kind}: the pass took {elapsed:.1f} s"
    assert bool(config.errors) == config_error and (not config_error or case.channel in config.errors)
    (alert,) = manager.alerts()
    assert alert.status == "open"                              # the audit table always gets the alert
    (entry,) = _entries(manager, case.channel)
    assert not entry.delivered and entry.state == "retrying" and entry.attempts >= 1
    assert entry.last_error.startswith(reason) or reason in entry.last_error, entry.last_error
    assert entry.next_attempt_at is not None                   # will be retried
    assert case.accepted() == []
    if config_error:                                           # reported once, at start-up
        (row,) = _rows(manager, "channel_misconfigured").to_dict("records")
        assert row["channel"] == case.channel and f"configuration: {row['error']}".startswith(reason)
    attempts_after_first = entry.attempts

    # 2. Still breaching - the "repeated" path - and the page is retried (and fails again).
    report, elapsed, manager, _ = _pass(home, case.resource(), sla)
    assert _action(report) == ["repeated"] and elapsed < BOUND
    (entry,) = _entries(manager, case.channel)
    assert not entry.delivered and entry.attempts > attempts_after_first
    assert reason in entry.last_error
    assert case.accepted() == []

    # 3. The channel recovers: delivered on the next pass, once.
    case.recover()
    report, elapsed, manager, config = _pass(home, case.resource(), sla)
    assert _action(report) == ["repeated"] and not config.errors
    (entry,) = _entries(manager, case.channel)
    assert entry.delivered, entry
    assert case.accepted() == [entry.key]
    assert case.idempotency_keys() == [entry.key]
    assert manager.alerts()[0].delivery_summary().startswith(f"{case.channel}: delivered")

    # 4. Clears: the resolution is delivered once; the opening page is never sent again.
    sla.breached = False
    report, _, manager, _ = _pass(home, case.resource(), sla)
    assert _action(report) == ["resolved"]
    report, _, manager, _ = _pass(home, case.resource(), sla)     # a quiet pass: nothing to send
    opened, resolved = _entries(manager, case.channel)
    assert opened.delivered and resolved.delivered and resolved.event == "resolved"
    assert sorted(case.accepted()) == sorted([opened.key, resolved.key])
    delivered = _rows(manager, "delivered")
    assert not delivered.duplicated(["delivery_of", "channel"]).any()

    # Secrets (the token, the webhook path) are in no recorded error, nor anywhere in the lakehouse.
    errors = " ".join(str(e) for e in manager.events()["error"].dropna())
    assert TOKEN not in errors and SECRET_PATH not in errors and "s3cr3t" not in errors
    open_lakehouse(home).flush()
    for path in Path(home).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert TOKEN.encode() not in data and SECRET_PATH.encode() not in data, path


def test_webhook_urls_other_than_http_are_refused_when_configured():
    for url in ("file:///etc/passwd", "data:,hello", "ftp://example.com/x", "gopher://x", "javascript:alert(1)",
                "http://", "127.0.0.1:8080/hook", "http://exa mple.com/", "http://example.com:99999/"):
        with pytest.raises(ChannelConfigError) as info:
            WebhookChannel(url)
        assert "etc/passwd" not in str(info.value)
    config = AlertChannelsResource(webhook_url="file:///etc/passwd", smtp_host="mail.example").configure()
    assert set(config.errors) == {"webhook", "email"}
    assert AlertChannelsResource().configure().errors == {} and AlertChannelsResource().configure().channels == {}


def test_smtp_host_without_recipients_fails_nothing_when_nothing_fires(home, monkeypatch):
    monkeypatch.setenv("TRACELAKE_SMTP_HOST", "127.0.0.1")
    resource = AlertChannelsResource()
    assert set(resource.channels()) == {"email"}          # no longer raises
    report, _, manager, config = _pass(home, resource, StubSLA(breached=False))
    assert _action(report) == ["ok"] and "no recipient" in config.errors["email"]
    assert manager.alerts() == [] and manager.pending_deliveries() == []


def test_dead_channels_are_delivered_to_in_parallel_within_one_deadline(home, hostile, smtp_server):
    """The issue's case: two alerts to two dead channels (a webhook and an SMTP server that never
    answer) took 101 s serially. Now: one deadline, and both alerts wait in the outbox."""
    webhook, smtp = hostile("silent"), hostile.silent_tcp()
    resource = AlertChannelsResource(webhook_url=webhook.url(), smtp_host="127.0.0.1", smtp_port=smtp.port,
                                     smtp_to=["oncall@test"])
    slas = [StubSLA("recall", "tip_predictions"), StubSLA("volume", "cleaned_trips")]
    lake = open_lakehouse(home)
    config = resource.configure()
    manager = AlertManager(lake, config.channels, backoff_s=0.05, timeout_s=TIMEOUT, retry_base_s=0)
    start = time.monotonic()
    report = watch(lake, slas=slas, manager=manager)
    elapsed = time.monotonic() - start
    assert _action(report) == ["opened", "opened"]
    assert elapsed < BOUND, elapsed                          # not 4 x TIMEOUT: parallel, and the channel is
    entries = [e for a in manager.alerts() for e in a.outbox]  # given up on for the rest of the pass
    assert len(entries) == 4 and not any(e.delivered for e in entries)
    for channel in ("webhook", "email"):
        first, second = sorted((e for e in entries if e.channel == channel), key=lambda e: e.enqueued_at)
        assert "deadline exceeded" in first.last_error
        assert second.attempts == 0 and second.note.startswith(f"not tried: {channel} failed earlier in this pass")
        assert second.next_attempt_at is not None
    # Healthy again: the next pass delivers all four.
    webhook.mode = "ok"
    port, inbox = smtp_server
    manager.channels = AlertChannelsResource(webhook_url=webhook.url(), smtp_host="127.0.0.1", smtp_port=port,
                                             smtp_to=["oncall@test"]).channels()
    watch(lake, slas=slas, manager=manager)
    assert all(e.delivered for a in manager.alerts() for e in a.outbox)
    assert len(webhook.accepted) == 2 and len(inbox.messages) == 2


def test_retries_back_off_exponentially_and_wait_for_their_time(home, hostile):
    assert [retry_delay(n, 300, 3600) for n in (1, 2, 3, 4, 5, 9)] == [300, 600, 1200, 2400, 3600, 3600]
    server = hostile("http500")
    lake = open_lakehouse(home)
    manager = AlertManager(lake, {"webhook": WebhookChannel(server.url())}, attempts=2, backoff_s=0.01,
                           timeout_s=TIMEOUT, retry_base_s=600, retry_cap_s=3600)
    before = datetime.now(UTC)
    assert manager.observe(POLICY, "c", True, "bad") == "opened"
    (entry,) = _entries(manager, "webhook")
    assert entry.attempts == 2 and server.requests == 2
    # attempt 1 -> in-pass retry after 0.01 s; attempt 2 ends the pass -> next pass after 600 * 2^(2-1) s
    wait = (entry.next_attempt_at - before).total_seconds()
    assert 1200 <= wait < 1200 + 30, wait
    server.mode = "ok"
    report = manager.deliver_pending()                    # not due yet: nothing is sent
    assert report.due == 0 and server.accepted == []
    report = manager.deliver_pending(now=datetime.now(UTC) + timedelta(seconds=1300))
    assert report.delivered == [entry.key] and len(server.accepted) == 1
    assert manager.deliver_pending(now=datetime.now(UTC) + timedelta(days=30)).due == 0


def test_a_page_recorded_by_a_process_that_died_is_delivered_by_the_next_pass(home, hostile):
    """The issue's lost page: the job died after recording 'opened' and before delivering; the
    next pass took the 'repeated' path, which never delivers. The outbox entry survives the crash."""
    server = hostile("ok")
    script = textwrap.dedent(f"""
        import os
        from tracelake.lineage import open_lakehouse
        from tracelake.monitors.alerts.manager import AlertManager, AlertPolicy
        from tracelake.monitors.alerts.channels import WebhookChannel
        manager = AlertManager(open_lakehouse({home!r}), {{"webhook": WebhookChannel({server.url()!r})}})
        with manager.deferred_delivery():
            manager.observe(AlertPolicy({POLICY.name!r}), "tip_predictions", True, "recall 0.6")
            os._exit(3)   # killed between recording the alert and delivering it
    """)
    assert subprocess.run([sys.executable, "-c", script], timeout=120).returncode == 3
    assert server.accepted == []
    report, _, manager, _ = _pass(home, AlertChannelsResource(webhook_url=server.url()), StubSLA())
    assert _action(report) == ["repeated"]
    assert len(server.accepted) == 1 and server.accepted[0]["body"]["alert"]["event"] == "opened"
    assert report.deliveries[0].delivered == [e.key for e in _entries(manager, "webhook")]


def test_delivery_state_in_the_cli_and_resend(home, hostile, capsys, monkeypatch):
    server = hostile("http500")
    monkeypatch.setenv("TRACELAKE_ALERT_WEBHOOK_URL", server.url(SECRET_PATH))
    lake = open_lakehouse(home)
    manager = AlertManager(lake, AlertChannelsResource().channels(), attempts=1, timeout_s=TIMEOUT,
                           give_up_after_s=0)
    assert manager.observe(POLICY, "tip_predictions", True, "recall 0.6") == "opened"
    alert_id = manager.alerts()[0].alert_id
    assert main(["--home", home, "alerts", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["delivery"] == "webhook: gave up, failed 1 time"          # give_up_after_s=0: at once
    assert row["outbox"][0]["last_error"].startswith("gave up after 1 attempt: webhook answered HTTP 500")
    assert main(["--home", home, "alerts"]) == 0
    assert "webhook: gave up, failed 1 time" in capsys.readouterr().out
    # Still failing: resend records the failure, exit 1.
    assert main(["--home", home, "alerts", "resend", alert_id]) == 1
    assert "HTTP 500" in capsys.readouterr().out
    server.mode = "ok"
    assert main(["--home", home, "alerts", "resend", alert_id, "--by", "alice"]) == 0
    assert "delivered" in capsys.readouterr().out and len(server.accepted) == 1
    # Never twice: a delivered page is not resent.
    assert main(["--home", home, "alerts", "resend"]) == 0
    assert "nothing to resend" in capsys.readouterr().out and len(server.accepted) == 1
    assert main(["--home", home, "alerts", "resend", "01M89NX7GD0TTN4S8KR78GCTWH"]) == 2
    events = AlertManager(lake).events()
    assert set(events[events["event"] == "delivery_resend"]["actor"]) >= {"alice"}


def test_two_deliverers_at_once_deliver_each_page_once(home, hostile):
    server = hostile("http500")
    lake = open_lakehouse(home)
    channels = {"webhook": WebhookChannel(server.url())}
    manager = AlertManager(lake, channels, attempts=1, timeout_s=TIMEOUT, retry_base_s=0)
    for i in range(5):
        manager.observe(AlertPolicy(f"p{i}"), "c", True, "bad")
    server.mode = "ok"
    import threading

    managers = [AlertManager(lake, channels, timeout_s=TIMEOUT, retry_base_s=0) for _ in range(4)]
    threads = [threading.Thread(target=m.deliver_pending) for m in managers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    keys = [p["body"]["alert"]["delivery_id"] for p in server.accepted]
    assert len(keys) == 5 and len(set(keys)) == 5
    delivered = _rows(manager, "delivered")
    assert len(delivered) == 5 and not delivered.duplicated(["delivery_of", "channel"]).any()


def test_the_monitoring_job_reports_misconfiguration_once_and_does_not_fail(home, hostile):
    import dagster as dg

    from tracelake.lineage import LakehouseResource
    from tracelake.monitors.alerts.monitoring_checks import build_monitoring_checks

    @dg.asset(name="tip_predictions")
    def tip_predictions() -> None:
        return None

    sla = StubSLA()
    checks = build_monitoring_checks([sla])
    job = dg.define_asset_job("monitoring", selection=dg.AssetSelection.checks(checks))
    defs = dg.Definitions(assets=[tip_predictions], asset_checks=[checks], jobs=[job], resources={
        "lakehouse": LakehouseResource(home=home),
        "alert_channels": AlertChannelsResource(webhook_url="file:///etc/passwd", smtp_host="127.0.0.1")})
    start = time.monotonic()
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_job_def("monitoring").execute_in_process(instance=instance)
    assert result.success and time.monotonic() - start < 60
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed                                    # the SLA breach is in the UI
    manager = AlertManager(open_lakehouse(home))
    (alert,) = manager.alerts()
    assert alert.status == "open"                              # ... and in the alerts table
    misconfigured = _rows(manager, "channel_misconfigured")
    assert sorted(misconfigured["channel"]) == ["email", "webhook"]
    assert {e.channel: e.last_error.split(":")[0] for e in alert.outbox} == {"webhook": "configuration",
                                                                          "email": "configuration"}
    logs = [e.user_message for e in instance.all_logs(result.run_id)]
    assert sum("alert channel webhook is misconfigured" in m for m in logs) == 1
    assert sum("alert channel email is misconfigured" in m for m in logs) == 1
    assert ALERTS.name in open_lakehouse(home).store.tables()


def test_a_tls_handshake_that_never_completes_is_cut_at_the_deadline(home, hostile):
    server = hostile.silent_tcp()
    lake = open_lakehouse(home)
    manager = AlertManager(lake, {"webhook": WebhookChannel(f"https://127.0.0.1:{server.port}/hook", timeout=30)},
                           timeout_s=TIMEOUT)
    start = time.monotonic()
    assert manager.observe(POLICY, "c", True, "bad") == "opened"
    assert time.monotonic() - start < BOUND                    # per-operation timeout 30 s: the guard cut it
    (entry,) = _entries(manager, "webhook")
    assert entry.last_error.startswith(f"deadline exceeded: no complete answer within {TIMEOUT:g} s")


class _Stuck:
    """A third-party channel that ignores deadlines and blocks for ever (like a hung DNS lookup)."""

    name = "stuck"

    def __init__(self):
        import threading

        self.release = threading.Event()

    def send(self, subject, body, payload):
        self.release.wait()


def test_a_hung_channel_is_abandoned_and_does_not_hold_up_the_pass(home, hostile):
    stuck, server = _Stuck(), hostile("ok")
    lake = open_lakehouse(home)
    policy = AlertPolicy("volume", channels=("stuck", "webhook"))
    manager = AlertManager(lake, {"stuck": stuck, "webhook": WebhookChannel(server.url())}, timeout_s=TIMEOUT)
    start = time.monotonic()
    assert manager.observe(policy, "c", True, "bad") == "opened"
    elapsed = time.monotonic() - start
    try:
        assert elapsed < BOUND, elapsed
        by_channel = {e.channel: e for e in _entries(manager, "stuck") + _entries(manager, "webhook")}
        assert by_channel["webhook"].delivered and len(server.accepted) == 1    # in parallel, not behind it
        assert "the attempt was abandoned" in by_channel["stuck"].last_error
        assert by_channel["stuck"].next_attempt_at is not None
    finally:
        stuck.release.set()


class _Slow:
    """A healthy channel that takes 0.8 s per page."""

    name = "slow"

    def __init__(self):
        self.sent = []

    def send(self, subject, body, payload, guard=None):
        time.sleep(0.8)
        self.sent.append(payload["delivery_id"])


def test_a_delivery_pass_is_bounded_and_what_it_could_not_reach_waits_in_the_outbox(home):
    slow = _Slow()
    manager = AlertManager(open_lakehouse(home), {"slow": slow}, timeout_s=TIMEOUT, phase_timeout_s=2.0,
                           retry_base_s=0)
    start = time.monotonic()
    with manager.deferred_delivery():
        for i in range(6):
            assert manager.observe(AlertPolicy(f"p{i}", channels=("slow",)), "c", True, "bad") == "opened"
    assert time.monotonic() - start < 2.0 + TIMEOUT + GRACE_S + 1.5
    report = manager.reports[-1]
    assert len(report.delivered) >= 2 and report.deferred and len(report.delivered) + len(report.deferred) == 6
    assert set(report.deferred.values()) == {"delivery pass ran out of time (2 s)"}
    for _ in range(3):                                   # the next passes deliver the rest
        manager.deliver_pending()
    assert sorted(slow.sent) == sorted(e.key for e in manager.pending_deliveries() + [
        e for a in manager.alerts() for e in a.outbox if e.delivered]) and len(set(slow.sent)) == 6
    assert manager.pending_deliveries() == []
