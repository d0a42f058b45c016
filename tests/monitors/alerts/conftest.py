"""Fixtures for the alert tests: real misbehaving servers on 127.0.0.1 (see ``hostile.py``, which
the delivery benchmark shares) and an SMTP server that can refuse, plus an environment without
any alert channel configured (a developer's shell must not change what a test sees)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller


def _load_hostile():
    name = "tracelake_tests_hostile"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("hostile.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


hostile_module = _load_hostile()

_ENV = ("TRACELAKE_ALERT_WEBHOOK_URL", "TRACELAKE_ALERT_WEBHOOK_TOKEN", "TRACELAKE_SMTP_HOST", "TRACELAKE_SMTP_PORT",
        "TRACELAKE_SMTP_FROM", "TRACELAKE_SMTP_TO", "TRACELAKE_SMTP_USER", "TRACELAKE_SMTP_PASSWORD",
        "TRACELAKE_SMTP_STARTTLS")


@pytest.fixture(autouse=True)
def _no_alert_channels_from_the_shell(monkeypatch):
    for var in _ENV:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def hostile():
    """``hostile(mode="ok", port=0)`` starts a :class:`HostileServer`; all are closed afterwards."""
    servers = []

    def start(mode: str = "ok", port: int = 0):
        server = hostile_module.HostileServer(mode, port)
        servers.append(server)
        return server

    start.free_port = hostile_module.free_port
    start.silent_tcp = lambda: servers.append(hostile_module.SilentTcpServer()) or servers[-1]
    yield start
    for server in servers:
        server.close()


class RefusingInbox:
    """An SMTP handler that refuses every recipient while ``refuse`` is set."""

    def __init__(self):
        self.messages: list[str] = []
        self.refuse = False

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content.decode())
        return "250 OK"


@pytest.fixture
def smtp_server():
    """(port, inbox): a real SMTP server; ``inbox.refuse = True`` makes it refuse."""
    inbox = RefusingInbox()
    port = hostile_module.free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, inbox
    controller.stop()
