"""Tracelake's own secret patterns: what detect-secrets misses or cuts too coarsely (part of
``redact``).

ODBC ``Pwd=``, ``AccountKey=``, SAS ``sig=``, ``redis://:pw@host``, ``https://token@host``,
``passcode=``, webhook URLs, whole PEM blocks, Authorization headers and newer vendor token
formats. :func:`apply_patterns` runs them, in order, before the detect-secrets scan
(``redact_scan``); what they find is replaced by ``***``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from tracelake.lineage.record.redact_known import REDACTED, is_marker, is_secret_key

__all__ = ["TRACELAKE_PATTERNS", "Replacement", "apply_patterns"]

Replacement = Callable[["re.Match[str]"], str]


def _keep(*groups: str) -> Replacement:
    """Replace the match by its named groups around ``***`` (the secret part)."""
    def repl(m: re.Match[str]) -> str:
        parts = []
        for g in groups:
            parts.append(REDACTED if g == "*" else (m.group(g) or ""))
        return "".join(parts)
    return repl


_HARMLESS_URL_USERS = {"git", "hg", "svn", "anonymous", "ftp"}
# Object-store URLs put the container (not a credential) where a user name goes.
_CONTAINER_SCHEMES = ("abfs://", "abfss://", "wasb://", "wasbs://", "gs://", "s3://", "s3a://")


def _url_userinfo(m: re.Match[str]) -> str:
    scheme, userinfo = m.group("scheme"), m.group("userinfo")
    if ":" in userinfo:
        user, password = userinfo.split(":", 1)
        if not password or password == REDACTED:
            return m.group(0)
        return f"{scheme}{user}:{REDACTED}@"
    if userinfo.lower() in _HARMLESS_URL_USERS or userinfo == REDACTED or scheme.lower() in _CONTAINER_SCHEMES:
        return m.group(0)
    return f"{scheme}{REDACTED}@"  # https://<token>@host: the user name is the credential


_SKIP_VALUES = {"", "none", "null", "true", "false", "nil", "undefined", REDACTED}


def _redact_assigned_values(pattern: re.Pattern[str], text: str) -> str:
    """Replace the values of ``key=value`` / ``key: value`` pairs whose key names a credential.

    The pattern consumes only ``key=`` (the value is matched in a lookahead), so a pair whose
    key is harmless never hides a pair inside its value (``failed: passcode=...``)."""
    spans: list[tuple[int, int]] = []
    for m in pattern.finditer(text):
        key = m.group("key")
        if not is_secret_key(key) or "authorization" in key.lower():  # headers: see "authorization header"
            continue
        value, start = m.group("value"), m.start("value")
        quoted = value[:1] in ("'", '"', "{")
        begin, end = (start + 1, start + len(value) - 1) if quoted else (start, start + len(value))
        inner = text[begin:end]
        if end <= begin or inner.strip().lower() in _SKIP_VALUES or is_marker(inner) or inner.startswith(REDACTED):
            continue
        spans.append((begin, end))
    if not spans:
        return text
    out, pos = [], 0
    for begin, end in sorted(spans):
        if begin < pos:  # inside a value already redacted
            pos = max(pos, end)
            continue
        out.append(text[pos:begin])
        out.append(REDACTED)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _token_ok(token: str) -> bool:
    """An Authorization credential, not an English word ("basic authentication failed")."""
    return any(c.isdigit() for c in token) or "=" in token or (token.lower() != token and token.upper() != token)


def _auth_scheme(m: re.Match[str]) -> str:
    return f"{m.group('head')}{REDACTED}" if _token_ok(m.group("token")) else m.group(0)


_VALUE = r"""(?P<value>"[^"\n]*"|'[^'\n]*'|\{[^}\n]*\}|[^\s,;&'"<>(){}\[\]|]+)"""
# The rest of a URL, without the punctuation that ends a sentence around it.
_URL_TAIL = r"[^\s'\"<>)\]]*[^\s'\"<>)\].,:;!?]"

#: (name, pattern, replacement), applied in this order before detect-secrets runs (replacement
#: None: the values of the pattern's ``key``/``value`` pairs, see ``_redact_assigned_values``).
TRACELAKE_PATTERNS: list[tuple[str, re.Pattern[str], Replacement | None]] = [
    # A whole PEM private key (detect-secrets flags only its BEGIN line); no END: up to the end.
    ("pem private key", re.compile(
        r"(?P<begin>-{4,5} ?BEGIN (?P<label>[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?) ?-{4,5})(?P<body>.*?)"
        r"(?:(?P<end>-{4,5} ?END (?P=label) ?-{4,5})|\Z)", re.S), _keep("begin", "*", "end")),
    ("putty private key", re.compile(r"(?P<head>PuTTY-User-Key-File-\d+:).*?(?:Private-MAC: *[0-9A-Fa-f]+|\Z)", re.S),
     _keep("head", "*")),
    # Webhook URLs: the path is the credential (Slack, Discord, Teams, .../hooks/<token>).
    ("slack webhook", re.compile(r"(?i)(?P<head>https?://hooks\.slack\.com/(?:services|workflows|triggers)/)"
                                 + _URL_TAIL), _keep("head", "*")),
    ("discord webhook", re.compile(r"(?i)(?P<head>https?://(?:[a-z]+\.)?discord(?:app)?\.com/api/webhooks/)"
                                   + _URL_TAIL), _keep("head", "*")),
    ("teams webhook", re.compile(r"(?i)(?P<head>https?://[a-z0-9.\-]+\.webhook\.office\.com/)" + _URL_TAIL),
     _keep("head", "*")),
    ("webhook path", re.compile(r"(?i)(?P<head>https?://[^\s/'\"<>]+/(?:[^\s/'\"<>?#]+/)*?(?:webhooks?|hooks)/)"
                                r"(?=[^\s'\"<>)\]]{8,})" + _URL_TAIL), _keep("head", "*")),
    # A whole JWT (detect-secrets' pattern stops before the signature).
    ("jwt", re.compile(r"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]+\.eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*"),
     lambda m: REDACTED),
    # user:password@ and token@ in URLs (detect-secrets needs a non-empty user and a password).
    ("url credentials", re.compile(r"(?i)(?P<scheme>\b[a-z][a-z0-9+.\-]*://)(?P<userinfo>[^\s/'\"<>]+)@"),
     _url_userinfo),
    # Authorization headers and bare bearer/basic credentials.
    ("authorization header", re.compile(
        r"(?i)(?P<head>\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token|digest|negotiate|"
        r"sharedkey|apikey|sso-key)\s+)?)"
        r"(?!(?:bearer|basic|token|digest|negotiate|sharedkey|apikey|sso-key)\b|\*\*\*)(?P<token>[^\s'\",;]{6,})"),
     _keep("head", "*")),
    ("bearer credential", re.compile(r"(?i)(?P<head>\b(?:bearer|basic)\s+)(?P<token>[A-Za-z0-9._~+/\-]{8,}=*)"),
     _auth_scheme),
    # key=value / key: value where the key names a credential - connection strings (ODBC Pwd=,
    # AccountKey=, SharedAccessKey=), query strings (sig=, token=, X-Amz-Signature=), config
    # text, JSON, YAML, Python reprs (passcode: ..., 'password': '...').
    ("credential assignment", re.compile(
        r"""(?P<head>(?<![A-Za-z0-9_])(?P<kq>["']?)(?P<key>[A-Za-z][A-Za-z0-9_.\-]{0,63})(?P=kq)\s*(?:=|:)\s*)"""
        r"(?=" + _VALUE + ")"), None),
    # Token formats detect-secrets 1.5 does not know (it knows the older ones of these vendors).
    ("vendor token", re.compile(
        r"(?<![A-Za-z0-9])(?:"
        r"github_pat_[A-Za-z0-9_]{22,}"                    # GitHub fine-grained PAT
        r"|gh[pousr]_[A-Za-z0-9_]{30,}"                    # GitHub classic tokens of any length
        r"|glpat-[A-Za-z0-9_\-]{20,}"                      # GitLab PAT
        r"|AIza[0-9A-Za-z_\-]{35}"                         # Google API key
        r"|GOCSPX-[A-Za-z0-9_\-]{20,}"                     # Google OAuth client secret
        r"|ya29\.[A-Za-z0-9_\-]{20,}"                      # Google OAuth access token
        r"|sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{20,}"  # OpenAI project/service keys
        r"|sk-ant-[a-z]{3,6}\d{2}-[A-Za-z0-9_\-]{20,}"     # Anthropic
        r"|(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}"       # Stripe secret/restricted (test too)
        r"|whsec_[A-Za-z0-9+/=]{20,}"                      # Stripe webhook signing secret
        r"|npm_[A-Za-z0-9]{36}"                            # npm
        r"|pypi-[A-Za-z0-9_\-]{50,}"                       # PyPI (any host)
        r"|hf_[A-Za-z0-9]{30,}"                            # Hugging Face
        r"|dapi[0-9a-f]{32}(?:-\d+)?"                      # Databricks PAT
        r"|hv[sbr]\.[A-Za-z0-9_\-]{24,}"                   # HashiCorp Vault
        r"|shp(?:at|ca|pa|ss)_[0-9a-fA-F]{32}"             # Shopify
        r"|xapp-\d-[A-Za-z0-9]+-\d+-[A-Za-z0-9]+"          # Slack app-level token
        r"|xox[abeoprs]-[A-Za-z0-9\-]{10,}"                # Slack tokens (any case, any shape)
        r"|ATATT3[A-Za-z0-9_\-=]{30,}"                     # Atlassian API token
        r"|[A-Za-z0-9_~.\-]{3}\dQ~[A-Za-z0-9_~.\-]{31,34}"  # Azure AD client secret
        r"|SG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}"   # SendGrid (any segment length)
        r"|AKIA[0-9A-Z]{16}|ASIA[0-9A-Z]{16}"               # AWS access key ids
        r"|glc[a-z]{2,4}-[A-Za-z0-9_\-]{20,}"              # other GitLab tokens
        r")(?![A-Za-z0-9])"), lambda m: REDACTED),
]


def apply_patterns(text: str) -> str:
    """``text`` with what :data:`TRACELAKE_PATTERNS` find replaced, pattern by pattern."""
    for _name, pattern, repl in TRACELAKE_PATTERNS:
        text = _redact_assigned_values(pattern, text) if repl is None else pattern.sub(repl, text)
    return text
