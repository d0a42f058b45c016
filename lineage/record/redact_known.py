"""Secrets recognised by what they are called or by their exact value (part of ``redact``).

- the placeholders redaction writes (:data:`REDACTED`, :data:`NOT_RECORDED`,
  :data:`FROM_ENVIRONMENT`, ``<from env NAME>``), never scanned or redacted again;
- keys that name a credential (``password``, ``api_key``, ``account key``, ``sig`` ...) - but
  not data keys such as ``partition_key``;
- values known to be secret: those redacted by key or registered with :func:`remember_secret`,
  and the values of secret-named environment variables (``*_TOKEN``, ``*_PASSWORD`` ...), which
  are removed from any later text whatever its shape (:func:`replace_known`).
"""

from __future__ import annotations

import functools
import os
import re
import threading
from collections.abc import Iterable
from typing import Any

__all__ = [
    "FROM_ENVIRONMENT",
    "NOT_RECORDED",
    "REDACTED",
    "Environment",
    "env_value_names",
    "env_var_name",
    "environment",
    "from_env",
    "is_marker",
    "is_secret_key",
    "remember_secret",
    "replace_known",
]

REDACTED = "***"
NOT_RECORDED = "<not recorded>"          # a resource field not declared safe to record
FROM_ENVIRONMENT = "<from environment>"  # a value equal to an environment variable's value
_FROM_ENV = re.compile(r"^<from env [A-Za-z_][A-Za-z0-9_]*>$")


def from_env(name: str) -> str:
    """What is recorded for a value Dagster resolved from the environment variable ``name``."""
    return f"<from env {name}>"


def env_var_name(value: Any) -> str | None:
    """The variable name of a ``dg.EnvVar`` (a ``str`` subclass whose text must not be read), or None."""
    if type(value).__name__ == "EnvVar" and isinstance(getattr(value, "env_var_name", None), str):
        return value.env_var_name
    return None


def is_marker(value: Any) -> bool:
    """True for the placeholders redaction itself writes (never scanned, never re-redacted)."""
    return isinstance(value, str) and (value in (REDACTED, NOT_RECORDED, FROM_ENVIRONMENT)
                                       or bool(_FROM_ENV.match(value)))


# -- keys that name credentials ---------------------------------------------------------------
_SECRET_WORDS = {
    "password", "passwd", "pwd", "pass", "passcode", "passphrase", "secret", "secrets", "token", "tokens",
    "credential", "credentials", "creds", "apikey", "auth", "authorization", "bearer", "cookie", "privatekey",
    "sas", "sig", "signature", "dsn", "webhook", "webhooks", "jwt", "hmac", "connstr", "accountkey",
    "sharedaccesskey",
}
# "<word> key" pairs that are credentials ("api key", "access key", "account key" ...).
_KEY_QUALIFIERS = {"api", "access", "secret", "private", "signing", "encryption", "master", "account", "ssh",
                   "client", "auth", "sas", "storage", "shared", "service", "db", "database", "license", "hmac",
                   "subscription", "app", "consumer", "session"}
_JOINED_SECRETS = ("password", "apikey", "secret", "privatekey", "accesskey", "accountkey", "connectionstring")


def _words(key: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", key)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


@functools.lru_cache(maxsize=8192)
def _is_secret_key(key: str) -> bool:
    words = _words(key)
    if not words:
        return False
    if any(w in _SECRET_WORDS for w in words):
        return True
    joined = "".join(words)
    if any(s in joined for s in _JOINED_SECRETS):
        return True
    if words == ["key"]:
        return True
    return any(w == "key" and i > 0 and words[i - 1] in _KEY_QUALIFIERS for i, w in enumerate(words))


def is_secret_key(key: Any) -> bool:
    """Does this key name a credential? Data keys (``partition_key``, ``sort_key``) do not."""
    return isinstance(key, str) and _is_secret_key(key)


# -- values known to be secret ----------------------------------------------------------------
_MAX_KNOWN = 10_000
# Shorter values are not searched for in text: "demo" or "root" would be erased from every path
# and message (they are still never recorded where they were given).
_MIN_KNOWN = 6
_known_secrets: set[str] = set()
_known_version = 0
_lock = threading.Lock()
# Environment variables whose names look secret but whose values are not (a directory, a socket).
_NOT_SECRET_ENV = {"PWD", "OLDPWD", "SSH_AUTH_SOCK", "GPG_AGENT_INFO", "XAUTHORITY", "KRB5CCNAME"}


def remember_secret(value: Any) -> None:
    """Register a secret value so :func:`scrub_text` removes it from any later text."""
    global _known_version
    if isinstance(value, bytes):
        value = value.decode(errors="ignore")
    if isinstance(value, str) and len(value) >= _MIN_KNOWN and not is_marker(value) and value not in _known_secrets:
        with _lock:
            if len(_known_secrets) < _MAX_KNOWN:
                _known_secrets.add(value)
                _known_version += 1


class Environment:
    """The environment as redaction sees it; rebuilt only when the environment changed."""

    def __init__(self, items: tuple[tuple[str, str], ...]):
        self.secret_values = frozenset(v for k, v in items if len(v) >= _MIN_KNOWN and k not in _NOT_SECRET_ENV
                                       and _is_secret_key(k) and not v.startswith(("/", "~")))
        self.names = {v: k for k, v in items if len(v) >= 8}


_env: tuple[int, Environment] | None = None


def environment() -> Environment:
    """The environment as redaction sees it now (built again only when it changed)."""
    global _env
    data = getattr(os.environ, "_data", None)  # the raw mapping: hashing it is 10x cheaper
    fingerprint = hash(tuple(data.items())) if isinstance(data, dict) else hash(tuple(os.environ.items()))
    cached = _env
    if cached is None or cached[0] != fingerprint:
        cached = (fingerprint, Environment(tuple(os.environ.items())))
        _env = cached
    return cached[1]


def env_value_names(value: Any) -> str | None:
    """The environment variable whose value ``value`` is (8+ characters), or None."""
    if not isinstance(value, str) or len(value) < 8:
        return None
    return environment().names.get(value)


_known_matcher: tuple[tuple[int, int], re.Pattern[str] | None] = ((-1, -1), None)


def _known_pattern(env: Environment) -> re.Pattern[str] | None:
    """One regex for every known secret (longest first), rebuilt when one is added."""
    global _known_matcher
    key = (_known_version, id(env))
    if _known_matcher[0] != key:
        with _lock:
            values = sorted(_known_secrets | env.secret_values, key=len, reverse=True)
        pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None
        _known_matcher = (key, pattern)
    return _known_matcher[1]


def replace_known(text: str, env: Environment, extra: Iterable[str]) -> str:
    """``text`` without any known secret value, nor any of ``extra`` (4+ characters)."""
    pattern = _known_pattern(env)
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for s in sorted((e for e in extra if isinstance(e, str) and len(e) >= 4), key=len, reverse=True):
        text = text.replace(s, REDACTED)
    return text
