"""Keep secrets out of everything Tracelake records: audit tables, the journal, MLflow, Dagster
events and logs. Redaction happens in the process, before a value is journaled, chained, logged
or sent anywhere.

Three layers, each safe on its own:

- **structured values** - :func:`redact_mapping` (run config, tags, metric rows): a value whose
  key names a credential (``password``, ``passcode``, ``token``, ``api_key``, ``account key``,
  ``sig`` ...) becomes ``***``; every other string is scanned as free text; a string equal to the
  value of an environment variable (8+ characters) is never recorded (:data:`FROM_ENVIRONMENT`).
  Resources are not described here but in ``config_record``: only the fields a resource declares
  safe are recorded at all.
- **free text** - :func:`scrub_text` (config strings, error messages, tracebacks, check samples,
  alert text): scanned by `detect-secrets <https://github.com/Yelp/detect-secrets>`_ (Yelp) -
  its regex plugins (AWS, Azure storage, basic auth, JWT, private keys, Slack, Stripe, Twilio,
  GitHub, GitLab, SendGrid, npm, PyPI, OpenAI, Discord, Telegram, IBM, Mailchimp, Square...) and
  its keyword plugin, and its Shannon entropy for random-looking tokens - after Tracelake's own
  patterns for what the library misses or cuts too coarsely (:data:`TRACELAKE_PATTERNS`: ODBC
  ``Pwd=``, ``AccountKey=``, SAS ``sig=``, ``redis://:pw@host``, ``https://token@host``,
  ``passcode=``, webhook URLs, whole PEM blocks, newer vendor token formats). What is found is
  replaced by ``***``.
- **known values** - every value redacted by key, every value a resource did not declare safe
  that looks secret, and the values of secret-named environment variables (``*_TOKEN``,
  ``*_PASSWORD``, ``*_WEBHOOK_URL`` ...) are removed from any later text, whatever its shape.

Cost: only strings are scanned, and the scan of each distinct string is cached (4,096 strings up
to 4 KB), so a component that runs again with the same config costs a dictionary lookup per
string. Long text is bounded by the caller (:func:`bound_text`): a scan window a little larger
than what is kept, so a secret cut by the limit is still seen whole.

This module is the one to import: it holds the structured values and exceptions, and re-exports
the rest - ``redact_known`` (placeholders, credential-named keys, known values),
``redact_patterns`` (Tracelake's patterns) and ``redact_scan`` (detect-secrets, entropy, the
cached scan).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tracelake.lineage.record.redact_known import (
    FROM_ENVIRONMENT,
    NOT_RECORDED,
    REDACTED,
    Environment,
    env_value_names,
    env_var_name,
    environment,
    from_env,
    is_marker,
    is_secret_key,
    remember_secret,
)
from tracelake.lineage.record.redact_patterns import TRACELAKE_PATTERNS
from tracelake.lineage.record.redact_scan import (
    bound_text,
    detect_secrets_library,
    find_secrets,
    looks_random,
    scrub_text,
    scrub_text_in,
)

__all__ = [
    "FROM_ENVIRONMENT",
    "NOT_RECORDED",
    "REDACTED",
    "TRACELAKE_PATTERNS",
    "bound_text",
    "env_value_names",
    "env_var_name",
    "find_secrets",
    "from_env",
    "is_marker",
    "is_secret_key",
    "looks_random",
    "redact_mapping",
    "redact_record",
    "redact_value",
    "remember_secret",
    "scrub_exception",
    "scrub_text",
]

# benchmarks/secrets_leak.py times loading detect-secrets through this name.
_lib = detect_secrets_library


# -- structured values -------------------------------------------------------------------------
def redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    return value


def redact_mapping(data: Any) -> Any:
    """A deep, JSON-serialisable copy of ``data`` with secrets removed: values under keys that
    name credentials become ``***`` (and are remembered, so later text never shows them), strings
    are scanned, a string equal to an environment variable's value becomes
    :data:`FROM_ENVIRONMENT`, and objects that are not JSON-like become their (scanned) ``repr``.
    """
    return _redact(data, environment())


def _redact(data: Any, env: Environment) -> Any:
    if isinstance(data, str):
        name = env_var_name(data)
        if name:
            return from_env(name)
        if is_marker(data):
            return data
        if len(data) >= 8 and data in env.names:
            return FROM_ENVIRONMENT
        return scrub_text_in(data, env)
    if data is None or isinstance(data, (bool, int, float)):
        return data
    if isinstance(data, (dict, Mapping)):
        out: dict[str, Any] = {}
        for k, v in data.items():
            if is_secret_key(k) and not is_marker(v):
                _remember_all(v)
                out[str(k)] = REDACTED if v is not None else None
            else:
                out[str(k)] = _redact(v, env)
        return out
    if isinstance(data, (list, tuple, set, frozenset)):
        return [_redact(v, env) for v in data]
    return scrub_text_in(repr(data), env)


def redact_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A record about to be journaled, with its text scrubbed and every other value (times,
    numbers, lists of them) kept as it is - the audit schema is unchanged."""
    env = environment()
    return {k: _redact_keep_types(k, v, env) for k, v in row.items()}


def _redact_keep_types(key: Any, value: Any, env: Environment) -> Any:
    if isinstance(value, str):
        if is_secret_key(key) and value and not is_marker(value):
            remember_secret(value)
            return REDACTED
        return scrub_text_in(value, env)
    if isinstance(value, Mapping):
        return {k: _redact_keep_types(k, v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_keep_types(None, v, env) for v in value]
    if isinstance(value, tuple):
        return tuple(_redact_keep_types(None, v, env) for v in value)
    return value


def _remember_all(value: Any) -> None:
    if isinstance(value, Mapping):
        for v in value.values():
            _remember_all(v)
    elif isinstance(value, (list, tuple, set)):
        for v in value:
            _remember_all(v)
    else:
        remember_secret(value)


# -- exceptions --------------------------------------------------------------------------------
_scrubbed_classes: dict[type, type] = {}


def _scrubbed_str(self: BaseException) -> str:
    return self.__dict__.get("_tracelake_scrubbed_str", "")


def scrub_exception(exc: BaseException | None) -> None:
    """Remove secrets from an exception (and its causes and notes) *in place*, before it leaves
    Tracelake's code for Dagster's event log and the logs: string arguments are scrubbed; an
    exception whose text does not come from its arguments (a Py4J error) gets a subclass of its
    own class (same name and module) that shows the scrubbed text."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        _scrub_one(exc)
        for sub in getattr(exc, "exceptions", ()) or ():  # exception groups
            scrub_exception(sub)
        exc = exc.__cause__ or exc.__context__


_MAX_EXCEPTION_TEXT = 20_000  # longer messages are cut (after scanning a window), not scanned whole


def _scrub_exception_text(text: str) -> str:
    return bound_text(text, _MAX_EXCEPTION_TEXT) or ""


def _scrub_one(exc: BaseException) -> None:
    try:
        args = tuple(_scrub_exception_text(a) if isinstance(a, str) else a for a in exc.args)
        if args != exc.args:
            exc.args = args
        for attr in ("strerror", "filename", "filename2", "msg", "reason", "description"):
            value = getattr(exc, attr, None)
            if isinstance(value, str):
                clean = _scrub_exception_text(value)
                if clean != value:
                    try:
                        setattr(exc, attr, clean)
                    except (AttributeError, TypeError):
                        pass
        notes = getattr(exc, "__notes__", None)
        if isinstance(notes, list):
            exc.__notes__ = [_scrub_exception_text(n) if isinstance(n, str) else n for n in notes]
        try:
            text = str(exc)
        except Exception:  # a broken __str__: nothing to show, nothing to leak
            return
        clean = _scrub_exception_text(text)
        if clean == text:
            return
        cls = type(exc)
        sub = _scrubbed_classes.get(cls)
        if sub is None:
            sub = type(cls.__name__, (cls,), {"__str__": _scrubbed_str, "__module__": cls.__module__,
                                              "__qualname__": cls.__qualname__})
            _scrubbed_classes[cls] = sub
        exc.__dict__["_tracelake_scrubbed_str"] = clean
        exc.__class__ = sub
    except TypeError:
        # __class__ cannot change on a built-in exception type; its text comes from its
        # arguments, which were scrubbed above.
        pass
