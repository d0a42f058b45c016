"""Alert channels: a generic webhook (Slack-compatible JSON) and email over SMTP.

The alerts table and the Dagster UI always get every alert; these channels are extra. Deliveries
go through the outbox (``outbox``): recorded with the alert, attempted under a total deadline
(``delivery``), retried on later passes until delivered, every attempt recorded. A channel that
cannot deliver never fails the run that raised the alert.

Configuration is checked when the channels are built (:meth:`AlertChannelsResource.configure`):
only ``http``/``https`` webhooks, SMTP needs recipients. A channel that is configured but unusable
becomes a :class:`MisconfiguredChannel`: its error is reported once at start-up, and its
deliveries are recorded as failed with that reason and retried, so fixing the configuration
delivers what was missed.
"""

from __future__ import annotations

import functools
import http.client
import json
import smtplib
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, ClassVar, Protocol

import dagster as dg
from pydantic import Field

from tracelake.monitors.alerts.delivery import ChannelConfigError, ChannelRefused, Guard

__all__ = [
    "AlertChannelsResource",
    "Channel",
    "ChannelConfig",
    "ChannelConfigError",
    "ChannelRefused",
    "MisconfiguredChannel",
    "SmtpChannel",
    "WebhookChannel",
    "validate_webhook_url",
]


class Channel(Protocol):
    name: str

    def send(self, subject: str, body: str, payload: dict[str, Any], guard: Guard | None = None) -> None: ...


def validate_webhook_url(url: Any) -> str | None:
    """Why ``url`` cannot be a webhook (None if it can). Never quotes the URL: its path is often
    the secret (Slack, Teams)."""
    if not isinstance(url, str) or not url.strip():
        return f"webhook URL must be a non-empty string, not {type(url).__name__}"
    if any(ord(c) < 33 or ord(c) == 127 for c in url.strip()) or url != url.strip():
        return "webhook URL contains spaces or control characters"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        return f"webhook URL cannot be parsed ({exc})"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        shown = scheme[:16] if scheme.replace("+", "").replace("-", "").replace(".", "").isalnum() else "?"
        return (f"webhook URL scheme {shown!r} is not allowed: only http and https"
                if scheme else "webhook URL has no scheme: only http:// and https:// URLs are allowed")
    if not parts.hostname:
        return "webhook URL has no host"
    return None


def _url_secrets(url: str) -> list[str]:
    """Parts of a webhook URL that must not appear in recorded errors (the path is often a token)."""
    out = [url]
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return out
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    if len(tail) >= 8:
        out.append(tail)
    if len(parts.path) >= 8:
        out.append(parts.path)
    if parts.password:
        out.append(parts.password)
    return out


def _guard_connection(conn: http.client.HTTPConnection, guard: Guard) -> None:
    """Every socket the connection opens is registered with the guard (and bounded by it)."""
    create = getattr(conn, "_create_connection")  # noqa: B009 - private in typeshed, public in practice

    def guarded_create(address: Any, timeout: Any = None, source_address: Any = None) -> Any:
        guard.check()
        sock = create(address, guard.op_timeout(timeout if isinstance(timeout, (int, float)) else None),
                      source_address)
        guard.register(sock)
        return sock

    setattr(conn, "_create_connection", guarded_create)  # noqa: B010


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, guard: Guard, **kwargs: Any):
        super().__init__(*args, **kwargs)
        _guard_connection(self, guard)


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, guard: Guard, **kwargs: Any):
        super().__init__(*args, **kwargs)
        _guard_connection(self, guard)


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, guard: Guard):
        super().__init__()
        self._tl_guard = guard

    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(functools.partial(_GuardedHTTPConnection, guard=self._tl_guard), req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, guard: Guard):
        super().__init__()
        self._tl_guard = guard

    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(functools.partial(_GuardedHTTPSConnection, guard=self._tl_guard), req,
                            context=getattr(self, "_context", None))


def _opener(guard: Guard) -> urllib.request.OpenerDirector:
    """http and https only (no file:, data:, ftp:), proxies from the environment, no redirects
    (a webhook that redirects a POST is misconfigured; its 3xx is reported)."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(),
                    urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor(),
                    _GuardedHTTPHandler(guard), _GuardedHTTPSHandler(guard)):
        opener.add_handler(handler)
    return opener


@dataclass
class WebhookChannel:
    url: str
    token: str | None = field(default=None, repr=False)
    timeout: float = 5.0          # per socket operation; the delivery's total deadline is the guard's
    name: str = "webhook"

    def __post_init__(self) -> None:
        problem = validate_webhook_url(self.url)
        if problem:
            raise ChannelConfigError(problem)

    def __repr__(self) -> str:
        return f"WebhookChannel(name={self.name!r}, url=<{urllib.parse.urlsplit(self.url).hostname}>)"

    def secrets(self) -> list[str]:
        return _url_secrets(self.url) + ([self.token] if self.token else [])

    def send(self, subject: str, body: str, payload: dict[str, Any], guard: Guard | None = None) -> None:
        problem = validate_webhook_url(self.url)
        if problem:
            raise ChannelConfigError(problem)
        data = json.dumps({"text": f"*{subject}*\n{body}", "alert": payload}, default=str).encode()
        request = urllib.request.Request(self.url, data=data, method="POST",
                                         headers={"Content-Type": "application/json"})
        if payload.get("delivery_id"):
            # The same key on every attempt of one (event, channel): a receiver can drop a repeat
            # when an answer was lost on the way back (delivery is at least once).
            request.add_header("Idempotency-Key", str(payload["delivery_id"]))
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        with (guard or Guard(self.timeout)) as g:
            try:
                response = _opener(g).open(request, timeout=g.op_timeout(self.timeout))
            except urllib.error.HTTPError as exc:
                exc.close()
                raise ChannelRefused(f"webhook answered HTTP {exc.code} {exc.reason}".strip()) from None
            # The status line is the answer: once a 2xx arrived the alert is delivered, whatever
            # happens to the rest of the body (which is not read).
            status = response.status
            response.close()
            if not 200 <= status < 300:
                raise ChannelRefused(f"webhook answered HTTP {status}")


class _GuardedSMTP(smtplib.SMTP):
    def __init__(self, guard: Guard, *args: Any, **kwargs: Any):
        self._tl_guard = guard
        super().__init__(*args, **kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> Any:
        self._tl_guard.check()
        sock = smtplib.SMTP._get_socket(self, host, port, self._tl_guard.op_timeout(timeout))  # type: ignore[attr-defined]
        self._tl_guard.register(sock)
        return sock


@dataclass
class SmtpChannel:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    timeout: float = 10.0         # per socket operation; the delivery's total deadline is the guard's
    name: str = "email"

    def __post_init__(self) -> None:
        if not self.recipients:
            raise ChannelConfigError("SMTP channel has no recipient")
        if not self.host:
            raise ChannelConfigError("SMTP channel has no host")

    def secrets(self) -> list[str]:
        return [self.password] if self.password else []

    def send(self, subject: str, body: str, payload: dict[str, Any], guard: Guard | None = None) -> None:
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        if payload.get("delivery_id"):
            # Stable across attempts: mail clients fold a repeated delivery into one message.
            message["Message-ID"] = f"<{payload['delivery_id']}@tracelake>"
        message.set_content(body + "\n\n" + json.dumps(payload, indent=2, default=str))
        with (guard or Guard(self.timeout)) as g:
            smtp = _GuardedSMTP(g, self.host, self.port, timeout=g.op_timeout(self.timeout))
            try:
                if self.starttls:
                    smtp.starttls()
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(message)
            except BaseException:
                smtp.close()
                raise
            try:   # accepted: a slow goodbye does not make it undelivered
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()


@dataclass
class MisconfiguredChannel:
    """Stands in for a channel whose configuration is wrong: every delivery fails with the reason
    (recorded, retried on later passes - so correcting the configuration delivers what was missed)."""

    name: str
    reason: str

    def secrets(self) -> list[str]:
        return []

    def send(self, subject: str, body: str, payload: dict[str, Any], guard: Guard | None = None) -> None:
        raise ChannelConfigError(self.reason)


@dataclass
class ChannelConfig:
    """What :meth:`AlertChannelsResource.configure` found: usable channels and, by channel name,
    the configuration errors (their channels are :class:`MisconfiguredChannel` in ``channels``)."""

    channels: dict[str, Any]
    errors: dict[str, str]


class AlertChannelsResource(dg.ConfigurableResource):
    """Resource key ``alert_channels``. Unset fields come from the environment:
    ``TRACELAKE_ALERT_WEBHOOK_URL``/``_TOKEN``, ``TRACELAKE_SMTP_HOST``/``_PORT``/``_FROM``/``_TO``
    (comma-separated)/``_USER``/``_PASSWORD``/``_STARTTLS``. Nothing configured: the alerts table
    and the Dagster UI only. Secrets are read when alerts are sent, never at import."""

    # Recorded with each run (lineage/record/config_record.py); never the webhook URL (its path is
    # the credential), its token, or the SMTP login.
    tracelake_recorded_fields: ClassVar[tuple[str, ...]] = (
        "smtp_host", "smtp_port", "smtp_from", "smtp_to", "smtp_starttls", "attempts")

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

    def configure(self) -> ChannelConfig:
        """Build the channels from the fields and, for unset fields, the environment (read now).
        Never raises: a channel configured wrongly is reported in ``errors`` and stands in as a
        :class:`MisconfiguredChannel`; nothing configured is fine (the alerts table only)."""
        import os

        env = os.environ
        out: dict[str, Any] = {}
        errors: dict[str, str] = {}
        url = self.webhook_url or env.get("TRACELAKE_ALERT_WEBHOOK_URL")
        if url:
            try:
                out["webhook"] = WebhookChannel(url, self.webhook_token or env.get("TRACELAKE_ALERT_WEBHOOK_TOKEN"))
            except ChannelConfigError as exc:
                errors["webhook"] = str(exc)
        host = self.smtp_host or env.get("TRACELAKE_SMTP_HOST")
        to = self.smtp_to or [a.strip() for a in env.get("TRACELAKE_SMTP_TO", "").split(",") if a.strip()]
        if host:
            port = self.smtp_port or env.get("TRACELAKE_SMTP_PORT", "25")
            if not to:
                errors["email"] = "SMTP host is set but no recipient: set TRACELAKE_SMTP_TO (or smtp_to)"
            elif not str(port).strip().isdigit():
                errors["email"] = "SMTP port is not a number (TRACELAKE_SMTP_PORT or smtp_port)"
            else:
                out["email"] = SmtpChannel(
                    host, int(port), self.smtp_from or env.get("TRACELAKE_SMTP_FROM", "tracelake@localhost"), tuple(to),
                    self.smtp_user or env.get("TRACELAKE_SMTP_USER"),
                    self.smtp_password or env.get("TRACELAKE_SMTP_PASSWORD"),
                    bool(self.smtp_starttls if self.smtp_starttls is not None
                         else env.get("TRACELAKE_SMTP_STARTTLS") == "1"))
        elif to:
            errors["email"] = "SMTP recipients are set but no host: set TRACELAKE_SMTP_HOST (or smtp_host)"
        for name, reason in errors.items():
            out[name] = MisconfiguredChannel(name, reason)
        return ChannelConfig(out, errors)

    def channels(self) -> dict[str, Any]:
        """The channels by name (misconfigured ones included as :class:`MisconfiguredChannel`);
        never raises - see :meth:`configure` for the errors."""
        return self.configure().channels
