"""The free-text scan (part of ``redact``): :func:`scrub_text`, :func:`bound_text`.

Text is scanned by `detect-secrets <https://github.com/Yelp/detect-secrets>`_ (Yelp) - its regex
plugins (AWS, Azure storage, basic auth, JWT, private keys, Slack, Stripe, Twilio, GitHub,
GitLab, SendGrid, npm, PyPI, OpenAI, Discord, Telegram, IBM, Mailchimp, Square...) and its
keyword plugin, and its Shannon entropy for random-looking tokens - after the values known to be
secret (``redact_known``) and Tracelake's own patterns (``redact_patterns``). What is found is
replaced by ``***``.

Cost: the scan of each distinct string is cached (4,096 strings up to 4 KB), so a component that
runs again with the same config costs a dictionary lookup per string. Long text is bounded by the
caller (:func:`bound_text`): a scan window a little larger than what is kept, so a secret cut by
the limit is still seen whole.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import threading
from collections.abc import Iterable

from tracelake.lineage.record.redact_known import REDACTED, Environment, environment, replace_known
from tracelake.lineage.record.redact_patterns import apply_patterns
from tracelake.lineage.record.runid import run_id_ms

__all__ = ["bound_text", "detect_secrets_library", "find_secrets", "looks_random", "scrub_text", "scrub_text_in"]


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


def detect_secrets_library() -> _Library:
    """detect-secrets' plugins, loaded once (the first call pays for importing them)."""
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
            and detect_secrets_library().entropy(core) > _entropy_limit(len(core)))


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
    text = apply_patterns(text)
    lib = detect_secrets_library()
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
    return scrub_text_in(text, environment(), extra_secrets)


# Tracelake's own identifiers (lineage/record/runid.py: 26 Crockford base32 characters, a
# millisecond clock then randomness) are not free text. Scanned, some of them read as credentials:
# detect-secrets' AWS key pattern (``A3T[A-Z0-9]`` + 16 characters) matches every id minted in
# the second whose clock characters spell ``A3T``, and ``ACCA``/``AGPA``/``APKA``... can come up
# in the random part - the audit record then held ``01M8B***G`` instead of the id (a whole batch
# of metric ids, in one test run). So ids are held out of the scan and put back unchanged - but
# only tokens whose clock reads 2020..2100: a random 26-character token passes for an id ~0.2%
# of the time, not always, so a credential of that shape is still scanned.
_ID = re.compile(r"(?<![A-Za-z0-9])[0-9A-HJKMNP-TV-Z]{26}(?![A-Za-z0-9])")
_ID_CLOCK = (1_577_836_800_000, 4_102_444_800_000)   # 2020-01-01 .. 2100-01-01, in ms


def _is_tracelake_id(token: str) -> bool:
    return _ID_CLOCK[0] <= run_id_ms(token) < _ID_CLOCK[1]   # token: a match of _ID


def _scan_text(text: str) -> str:
    if len(text) <= _CACHE_MAX_CHARS:
        return _scan_cached(text)
    return _scan(text)


def _scan_keeping_ids(text: str) -> str:
    if _ID.fullmatch(text) and _is_tracelake_id(text):
        return text   # an id field: the common case, no scan
    # The placeholder must not occur in the text already, or restoring would rewrite the text.
    tag = "tracelake-id"
    while f"<{tag}-" in text:
        tag += "-x"
    ids: list[str] = []

    def hold(m: re.Match[str]) -> str:
        if not _is_tracelake_id(m.group(0)):
            return m.group(0)
        ids.append(m.group(0))
        return f"<{tag}-{len(ids) - 1}>"

    held = _ID.sub(hold, text)
    if not ids:
        return _scan_text(text)
    placeholder = re.compile(rf"<{re.escape(tag)}-(\d+)>")
    return placeholder.sub(lambda m: ids[int(m.group(1))] if int(m.group(1)) < len(ids) else m.group(0),
                           _scan_text(held))


def scrub_text_in(text: str, env: Environment, extra_secrets: Iterable[str] = ()) -> str:
    """:func:`scrub_text` of a string, with the environment as ``env`` sees it."""
    text = replace_known(text, env, extra_secrets)
    if len(text) < _SHORT:
        return text
    return _scan_keeping_ids(text)


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
