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
"""

from __future__ import annotations

import functools
import itertools
import math
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

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


class _Env:
    """The environment as redaction sees it; rebuilt only when the environment changed."""

    def __init__(self, items: tuple[tuple[str, str], ...]):
        self.secret_values = frozenset(v for k, v in items if len(v) >= _MIN_KNOWN and k not in _NOT_SECRET_ENV
                                       and _is_secret_key(k) and not v.startswith(("/", "~")))
        self.names = {v: k for k, v in items if len(v) >= 8}


_env: tuple[int, _Env] | None = None


def _environment() -> _Env:
    global _env
    data = getattr(os.environ, "_data", None)  # the raw mapping: hashing it is 10x cheaper
    fingerprint = hash(tuple(data.items())) if isinstance(data, dict) else hash(tuple(os.environ.items()))
    cached = _env
    if cached is None or cached[0] != fingerprint:
        cached = (fingerprint, _Env(tuple(os.environ.items())))
        _env = cached
    return cached[1]


def env_value_names(value: Any) -> str | None:
    """The environment variable whose value ``value`` is (8+ characters), or None."""
    if not isinstance(value, str) or len(value) < 8:
        return None
    return _environment().names.get(value)


_known_matcher: tuple[tuple[int, int], re.Pattern[str] | None] = ((-1, -1), None)


def _known_pattern(env: _Env) -> re.Pattern[str] | None:
    """One regex for every known secret (longest first), rebuilt when one is added."""
    global _known_matcher
    key = (_known_version, id(env))
    if _known_matcher[0] != key:
        with _lock:
            values = sorted(_known_secrets | env.secret_values, key=len, reverse=True)
        pattern = re.compile("|".join(re.escape(v) for v in values)) if values else None
        _known_matcher = (key, pattern)
    return _known_matcher[1]


def _replace_known(text: str, env: _Env, extra: Iterable[str]) -> str:
    pattern = _known_pattern(env)
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for s in sorted((e for e in extra if isinstance(e, str) and len(e) >= 4), key=len, reverse=True):
        text = text.replace(s, REDACTED)
    return text


# -- Tracelake's patterns: what detect-secrets misses or cuts too coarsely ---------------------
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
        if not _is_secret_key(key) or "authorization" in key.lower():  # headers: see "authorization header"
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


# -- detect-secrets ----------------------------------------------------------------------------
class _Library:
    """detect-secrets' plugins, used directly (no baseline, no settings, no network verification)."""

    def __init__(self) -> None:
        from detect_secrets.plugins import (  # the package's plugin modules
            artifactory,
            aws,
            azure_storage_key,
            basic_auth,
            cloudant,
            discord,
            github_token,
            gitlab_token,
            high_entropy_strings,
            ibm_cloud_iam,
            ibm_cos_hmac,
            jwt,
            keyword,
            mailchimp,
            npm,
            openai,
            private_key,
            pypi_token,
            sendgrid,
            slack,
            softlayer,
            square_oauth,
            stripe,
            telegram_token,
            twilio,
        )

        # Every regex plugin of the library except public IPv4 addresses (not a credential).
        self.regex_plugins = [
            artifactory.ArtifactoryDetector(), aws.AWSKeyDetector(), azure_storage_key.AzureStorageKeyDetector(),
            basic_auth.BasicAuthDetector(), cloudant.CloudantDetector(), discord.DiscordBotTokenDetector(),
            github_token.GitHubTokenDetector(), gitlab_token.GitLabTokenDetector(), ibm_cloud_iam.IbmCloudIamDetector(),
            ibm_cos_hmac.IbmCosHmacDetector(), jwt.JwtTokenDetector(), mailchimp.MailchimpDetector(),
            npm.NpmDetector(), openai.OpenAIDetector(), private_key.PrivateKeyDetector(),
            pypi_token.PypiTokenDetector(), sendgrid.SendGridDetector(), slack.SlackDetector(),
            softlayer.SoftlayerDetector(), square_oauth.SquareOAuthDetector(), stripe.StripeDetector(),
            telegram_token.TelegramBotTokenDetector(), twilio.TwilioKeyDetector(),
        ]
        self.keyword = keyword.KeywordDetector()
        # The keyword plugin's assignment forms: unquoted config (``key: v``, ``key = v``) and
        # the quoted forms of code.
        self.keyword_forms = [keyword.CONFIG_DENYLIST_REGEX_TO_GROUP, keyword.QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP]
        self.base64 = high_entropy_strings.Base64HighEntropyString()  # limit 4.5 bits per character
        # The keyword plugin's regexes are slow on long lines; a line without one of its words
        # cannot match them, and finding a word is one fast scan.
        self.keyword_gate = re.compile("|".join(keyword.DENYLIST), re.IGNORECASE)

    def line_findings(self, line: str) -> set[str]:
        found: set[str] = set()
        for plugin in self.regex_plugins:
            for hit in plugin.analyze_string(line):
                found.add(hit)
        if self.keyword_gate.search(line):
            for form in self.keyword_forms:
                for hit in self.keyword.analyze_string(line, denylist_regex_to_group=form):
                    found.add(hit)
        return found

    def entropy(self, token: str) -> float:
        return self.base64.calculate_shannon_entropy(token)


_library: _Library | None = None
_library_lock = threading.Lock()


def _lib() -> _Library:
    global _library
    if _library is None:
        with _library_lock:
            if _library is None:
                _library = _Library()
    return _library


# Random-looking tokens: 20+ characters of the base64/url-safe alphabet, with upper case, lower
# case and digits, whose Shannon entropy (detect-secrets' measure) is near that of random text of
# the same length, whose character classes change as often as in random text, and which are not
# mostly made of words (``ProfileResultsParamV2``, ``spark_catalog_v2``). Paths, identifiers,
# words, hex digests, run ids and UUIDs are not tokens. Measured while choosing the limits: random
# base64 of 20-24 characters is found ~99 % of the time, of 32+ characters 99.9 %; of the 1,345
# mixed-case 20+ character strings in the site-packages sources and paths, 46 are taken for
# tokens (crypto OIDs like ``Gost28147_89_ParamSet``, model names, real tokens in URLs).
_TOKEN = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{20,}={0,2}(?![A-Za-z0-9+/=_\-])")
_MIN_TOKEN = 20
_MIN_CLASS_CHANGES = 0.35
_WORDISH = re.compile(r"[A-Z]?[a-z]{3,}|[A-Z]{3,}(?![a-z])|[_\-./]")


def _word_coverage(token: str) -> float:
    """Share of the token in words, acronyms and separators (random base64: ~0.25)."""
    return sum(len(m.group(0)) for m in _WORDISH.finditer(token)) / len(token)


def _max_word_coverage(length: int) -> float:
    """Above this, a token reads as made of words: 1 in 1,000 random tokens of this length is."""
    return max(0.62, 0.88 - (length - 20) * 0.0075)


def _entropy_limit(length: int) -> float:
    """Bits per character above which a token of this length reads as random: random base64
    of length n has about log2(n) - 0.3 bits per character (n <= 64); capped at detect-secrets'
    default limit of 4.5."""
    return min(4.5, math.log2(min(length, 64)) - 1.0)


def _class_changes(token: str) -> float:
    def cls(c: str) -> int:
        return 0 if c.isupper() else 1 if c.islower() else 2 if c.isdigit() else 3
    return sum(cls(a) != cls(b) for a, b in itertools.pairwise(token)) / (len(token) - 1)


def looks_random(token: str) -> bool:
    """Is this token (20+ characters, no spaces) a random-looking credential?"""
    core = token.rstrip("=")
    if len(core) < _MIN_TOKEN:
        return False
    if not (any(c.isdigit() for c in core) and any(c.isupper() for c in core) and any(c.islower() for c in core)):
        return False
    return (_class_changes(core) >= _MIN_CLASS_CHANGES and _word_coverage(core) < _max_word_coverage(len(core))
            and _lib().entropy(core) > _entropy_limit(len(core)))


def _high_entropy_tokens(text: str) -> list[str]:
    return [m.group(0) for m in _TOKEN.finditer(text) if looks_random(m.group(0))]


_KEY_HEADER = re.compile(r"^(?:BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?|PuTTY-User-Key-File-\d+)$")
_RUNS = re.compile(r"(?:\*\*\*){2,}")


def _clean_finding(text: str, hit: str) -> str | None:
    """What to replace for one library finding (None: nothing worth replacing)."""
    hit = hit.strip().strip("\"'`")
    if _KEY_HEADER.match(hit):
        return None  # a private key's BEGIN line: the block itself was redacted by "pem private key"
    m = re.match(r"^[A-Za-z][A-Za-z0-9_]*=(.+)$", hit, re.S)
    if m:
        hit = m.group(1)  # AccountKey=<key>: keep the name, replace the key
    if len(hit) < 4 or REDACTED in hit or hit not in text:
        return None
    return hit


# -- the scan ----------------------------------------------------------------------------------
_CACHE_MAX_CHARS = 4096
_SHORT = 8  # strings shorter than this cannot hold a detectable secret beside its context


def _scan(text: str) -> str:
    for _name, pattern, repl in TRACELAKE_PATTERNS:
        text = _redact_assigned_values(pattern, text) if repl is None else pattern.sub(repl, text)
    lib = _lib()
    for _ in range(4):  # the keyword plugin reports one match per form and line: repeat until clean
        hits: set[str] = set()
        for line in text.splitlines() or [text]:
            if len(line) >= _SHORT:
                hits |= lib.line_findings(line)
        replace = {c for c in (_clean_finding(text, h) for h in hits) if c}
        if not replace:
            break
        for hit in sorted(replace, key=len, reverse=True):
            text = text.replace(hit, REDACTED)
    for token in sorted(set(_high_entropy_tokens(text)), key=len, reverse=True):
        text = text.replace(token, REDACTED)
    return _RUNS.sub(REDACTED, text)  # a token found in parts by two detectors reads as one


_scan_cached = functools.lru_cache(maxsize=4096)(_scan)


def find_secrets(text: str) -> list[str]:
    """The parts of ``text`` redaction would remove (for tests, benchmarks and reviews)."""
    scrubbed = scrub_text(text) or ""
    if scrubbed == text:
        return []
    out, pieces = [], re.split(re.escape(REDACTED), scrubbed)
    pos = 0
    for before, after in itertools.pairwise(pieces):
        start = text.find(before, pos) + len(before) if before else pos
        end = text.find(after, start) if after else len(text)
        if end < start:
            end = start
        out.append(text[start:end])
        pos = end
    return out


def scrub_text(text: str | None, extra_secrets: Iterable[str] = ()) -> str | None:
    """``text`` with every credential found replaced by ``***`` (None stays None)."""
    if text is None:
        return None
    if not isinstance(text, str):
        text = str(text)
    return _scrub(text, _environment(), extra_secrets)


def _scrub(text: str, env: _Env, extra_secrets: Iterable[str] = ()) -> str:
    text = _replace_known(text, env, extra_secrets)
    if len(text) < _SHORT:
        return text
    if len(text) <= _CACHE_MAX_CHARS:
        return _scan_cached(text)
    return _scan(text)


def bound_text(text: str | None, limit: int, *, keep: str = "head", margin: int = 512) -> str | None:
    """Scrubbed and at most ``limit`` characters (``keep``: the head or the tail). Only a window
    of ``limit + margin`` characters is scanned, so a 5 MB value costs what a 5 KB one does,
    and a secret straddling the cut is still found whole before the cut is made."""
    if text is None:
        return None
    if not isinstance(text, str):
        text = str(text)
    if len(text) <= limit:
        return scrub_text(text)
    cut = len(text) - limit
    if keep == "tail":
        window = scrub_text(text[-(limit + margin):]) or ""
        return f"[{cut} characters cut] " + window[-limit:]
    window = scrub_text(text[:limit + margin]) or ""
    return window[:limit] + f" [{cut} characters cut]"


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
    return _redact(data, _environment())


def _redact(data: Any, env: _Env) -> Any:
    if isinstance(data, str):
        name = env_var_name(data)
        if name:
            return from_env(name)
        if is_marker(data):
            return data
        if len(data) >= 8 and data in env.names:
            return FROM_ENVIRONMENT
        return _scrub(data, env)
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
    return _scrub(repr(data), env)


def redact_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A record about to be journaled, with its text scrubbed and every other value (times,
    numbers, lists of them) kept as it is - the audit schema is unchanged."""
    env = _environment()
    return {k: _redact_keep_types(k, v, env) for k, v in row.items()}


def _redact_keep_types(key: Any, value: Any, env: _Env) -> Any:
    if isinstance(value, str):
        if is_secret_key(key) and value and not is_marker(value):
            remember_secret(value)
            return REDACTED
        return _scrub(value, env)
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
