"""Alert channels: a generic webhook (Slack-compatible JSON) and email over SMTP.

The alerts table and the Dagster UI always get every alert; these channels are extra. A
delivery is retried with backoff, and every attempt - success or the error - is recorded with
the alert. A channel that cannot deliver never fails the run that raised the alert.
"""

from __future__ import annotations

import json
import smtplib
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any, Protocol

import dagster as dg
from pydantic import Field

from tracelake.lineage.record.redact import scrub_text

__all__ = ["Channel", "WebhookChannel", "SmtpChannel", "AlertChannelsResource", "Delivery"]


@dataclass
class Delivery:
    channel: str
    attempt: int
    delivered: bool
    error: str | None = None


class Channel(Protocol):
    name: str

    def send(self, subject: str, body: str, payload: dict[str, Any]) -> None: ...


@dataclass
class WebhookChannel:
    url: str
    token: str | None = None
    timeout: float = 5.0
    name: str = "webhook"

    def send(self, subject: str, body: str, payload: dict[str, Any]) -> None:
        data = json.dumps({"text": f"*{subject}*\n{body}", "alert": payload}, default=str).encode()
        request = urllib.request.Request(self.url, data=data, method="POST",
                                         headers={"Content-Type": "application/json"})
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            if response.status >= 300:
                raise RuntimeError(f"webhook answered HTTP {response.status}")


@dataclass
class SmtpChannel:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 10.0
    name: str = "email"

    def send(self, subject: str, body: str, payload: dict[str, Any]) -> None:
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(body + "\n\n" + json.dumps(payload, indent=2, default=str))
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(message)


def deliver(channel: Any, subject: str, body: str, payload: dict[str, Any], *, attempts: int = 3,
            backoff_s: float = 0.5) -> list[Delivery]:
    """Try up to ``attempts`` times; returns every attempt's outcome (never raises)."""
    outcomes = []
    for attempt in range(1, attempts + 1):
        try:
            channel.send(subject, body, payload)
            outcomes.append(Delivery(channel.name, attempt, True))
            return outcomes
        except (OSError, urllib.error.URLError, smtplib.SMTPException, RuntimeError) as exc:
            outcomes.append(Delivery(channel.name, attempt, False, scrub_text(f"{type(exc).__name__}: {exc}")[:500]))
            if attempt < attempts:
                time.sleep(backoff_s * 2 ** (attempt - 1))
    return outcomes


class AlertChannelsResource(dg.ConfigurableResource):
    """Resource key ``alert_channels``. Unset fields come from the environment:
    ``TRACELAKE_ALERT_WEBHOOK_URL``/``_TOKEN``, ``TRACELAKE_SMTP_HOST``/``_PORT``/``_FROM``/``_TO``
    (comma-separated)/``_USER``/``_PASSWORD``/``_STARTTLS``. Nothing configured: the alerts table
    and the Dagster UI only. Secrets are read when alerts are sent, never at import."""

    webhook_url: str | None = Field(default=None)
    webhook_token: str | None = Field(default=None)
    smtp_host: str | None = Field(default=None)
    smtp_port: int | None = Field(default=None)
    smtp_from: str | None = Field(default=None)
    smtp_to: list[str] | None = Field(default=None)
    smtp_user: str | None = Field(default=None)
    smtp_password: str | None = Field(default=None)
    smtp_starttls: bool | None = Field(default=None)
    attempts: int = Field(default=3, description="delivery attempts per channel")

    def channels(self) -> dict[str, Any]:
        import os

        env = os.environ
        out: dict[str, Any] = {}
        url = self.webhook_url or env.get("TRACELAKE_ALERT_WEBHOOK_URL")
        if url:
            out["webhook"] = WebhookChannel(url, self.webhook_token or env.get("TRACELAKE_ALERT_WEBHOOK_TOKEN"))
        host = self.smtp_host or env.get("TRACELAKE_SMTP_HOST")
        if host:
            to = self.smtp_to or [a.strip() for a in env.get("TRACELAKE_SMTP_TO", "").split(",") if a.strip()]
            if not to:
                raise ValueError("TRACELAKE_SMTP_HOST is set but no recipient: set TRACELAKE_SMTP_TO")
            out["email"] = SmtpChannel(
                host, int(self.smtp_port or env.get("TRACELAKE_SMTP_PORT", "25")),
                self.smtp_from or env.get("TRACELAKE_SMTP_FROM", "tracelake@localhost"), tuple(to),
                self.smtp_user or env.get("TRACELAKE_SMTP_USER"), self.smtp_password or env.get("TRACELAKE_SMTP_PASSWORD"),
                bool(self.smtp_starttls if self.smtp_starttls is not None else env.get("TRACELAKE_SMTP_STARTTLS") == "1"))
        return out
