"""A corpus of real credential formats (fake values, generated), shared by the redaction tests
(``test_secrets_corpus.py``) and the leak benchmark (``benchmarks/secrets_leak.py``).

Each :class:`Credential` says how the credential appears in text (``text``), how it would be put
in a structured value (``key`` = ``value``), the fragments that must never reach any store
(``secrets``) and exactly what redaction leaves of ``text`` (``expected``). ``corpus(seed)``
draws fresh random values, so every path of the benchmark plants values of its own and a leak
is traced to the path it came through.
"""

from __future__ import annotations

import base64
import json
import random
import string
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["KINDS", "Credential", "corpus"]

UPPER, LOWER, DIGITS = string.ascii_uppercase, string.ascii_lowercase, string.digits
ALNUM = UPPER + LOWER + DIGITS
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"
HEX = "0123456789abcdef"

KINDS = ("cloud", "vcs", "saas", "connection", "url", "webhook", "header", "private_key", "keyword", "entropy")


@dataclass(frozen=True)
class Credential:
    name: str                 # the format, e.g. "azure_storage_connection_string"
    kind: str                 # its class (see KINDS): one test per class
    text: str                 # how it appears in free text (a config string, an error message)
    expected: str             # exactly what redaction leaves of ``text``
    secrets: tuple[str, ...]  # fragments that must never reach a store
    key: str                  # the key it is planted under in a structured value
    value: str                # ... and the value (``text``, or the bare secret for keyword formats)


def _pick(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _mixed(rng: random.Random, alphabet: str, n: int) -> str:
    """Random, with at least one upper case letter, lower case letter and digit (as real keys)."""
    while True:
        s = _pick(rng, alphabet, n)
        if any(c.isupper() for c in s) and any(c.islower() for c in s) and any(c.isdigit() for c in s):
            return s


def _pem(rng: random.Random, label: str, lines: int = 6) -> tuple[str, str]:
    body = [_mixed(rng, B64, 64) for _ in range(lines)]
    return f"-----BEGIN {label}-----\n" + "\n".join(body) + f"\n-----END {label}-----", body[0]


def _jwt(rng: random.Random) -> str:
    def seg(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    header = seg({"alg": "HS256", "typ": "JWT"})
    payload = seg({"sub": _pick(rng, DIGITS, 10), "name": "etl-bot", "iat": 1767225600, "jti": _pick(rng, ALNUM, 16)})
    return f"{header}.{payload}.{_mixed(rng, URLSAFE, 43)}"


def _password(rng: random.Random) -> str:
    # Real passwords: letters, digits, punctuation; never a URL or connection-string delimiter.
    return _mixed(rng, ALNUM, 10) + rng.choice("!#%*+-_.~") + _mixed(rng, ALNUM, 5)


Maker = Callable[[random.Random], Credential]
_MAKERS: list[Maker] = []


def _format(fn: Maker) -> Maker:
    _MAKERS.append(fn)
    return fn


def _plain(name: str, kind: str, secret: str, key: str | None = None) -> Credential:
    return Credential(name, kind, secret, "***", (secret,), key or f"{name}_setting", secret)


# -- cloud ------------------------------------------------------------------------------------
@_format
def aws_access_key_id(rng):
    return _plain("aws_access_key_id", "cloud", "AKIA" + _pick(rng, UPPER + "234567", 16), "aws_id")


@_format
def aws_secret_access_key_bare(rng):
    sk = _mixed(rng, B64, 40)
    return Credential("aws_secret_access_key_bare", "entropy", f"signature mismatch for {sk} in eu-west-1",
                      "signature mismatch for *** in eu-west-1", (sk,), "signing_material", sk)


@_format
def aws_session_token(rng):
    tok = "FwoGZXIvYXdzE" + _mixed(rng, B64, 140)
    return Credential("aws_session_token", "cloud", f"AWS_SESSION_TOKEN={tok}", "AWS_SESSION_TOKEN=***", (tok,),
                      "aws_session", f"AWS_SESSION_TOKEN={tok}")


@_format
def azure_storage_connection_string(rng):
    key = _mixed(rng, B64, 86) + "=="
    text = (f"DefaultEndpointsProtocol=https;AccountName=tlacct;AccountKey={key};"
            "EndpointSuffix=core.windows.net")
    return Credential("azure_storage_connection_string", "connection", text,
                      "DefaultEndpointsProtocol=https;AccountName=tlacct;AccountKey=***;EndpointSuffix=core.windows.net",
                      (key,), "storage_connection", text)


@_format
def azure_sas_url(rng):
    raw = base64.b64encode(rng.randbytes(32)).decode()
    sig = urllib.parse.quote(raw, safe="")
    base = ("https://tlacct.blob.core.windows.net/raw/trips.csv?sv=2022-11-02&ss=b&srt=co&sp=rl"
            "&se=2026-12-31T00:00:00Z&spr=https")
    return Credential("azure_sas_url", "connection", f"{base}&sig={sig}", f"{base}&sig=***", (sig, raw),
                      "landing_url", f"{base}&sig={sig}")


@_format
def gcp_api_key(rng):
    return _plain("gcp_api_key", "cloud", "AIza" + _mixed(rng, URLSAFE, 35), "maps_client")


@_format
def gcp_service_account_json(rng):
    pem, line = _pem(rng, "PRIVATE KEY")
    key_id = _pick(rng, HEX, 40)
    text = json.dumps({"type": "service_account", "project_id": "tl-prod", "private_key_id": key_id,
                       "private_key": pem + "\n", "client_email": "etl@tl-prod.iam.gserviceaccount.com"})
    expected = json.dumps({"type": "service_account", "project_id": "tl-prod", "private_key_id": "***",
                           "private_key": "***", "client_email": "etl@tl-prod.iam.gserviceaccount.com"})
    return Credential("gcp_service_account_json", "private_key", text, expected, (line, key_id), "gcp_account", text)


@_format
def azure_ad_client_secret(rng):
    return _plain("azure_ad_client_secret", "cloud", _mixed(rng, ALNUM, 3) + str(rng.randint(0, 9)) + "Q~"
                  + _mixed(rng, ALNUM + "_~.-", 34), "aad_app")


# -- version control --------------------------------------------------------------------------
@_format
def github_classic_pat(rng):
    return _plain("github_classic_pat", "vcs", "ghp_" + _mixed(rng, ALNUM, 36), "gh")


@_format
def github_fine_grained_pat(rng):
    return _plain("github_fine_grained_pat", "vcs",
                  "github_pat_" + _mixed(rng, ALNUM, 22) + "_" + _mixed(rng, ALNUM, 59), "gh_fine")


@_format
def gitlab_pat(rng):
    return _plain("gitlab_pat", "vcs", "glpat-" + _mixed(rng, URLSAFE, 20), "gl")


@_format
def https_token_url(rng):
    tok = _mixed(rng, ALNUM, 32)
    return Credential("https_token_url", "url", f"https://{tok}@git.example.com/data/etl.git",
                      "https://***@git.example.com/data/etl.git", (tok,), "repo", f"https://{tok}@git.example.com/data/etl.git")


# -- SaaS API keys ----------------------------------------------------------------------------
@_format
def slack_bot_token(rng):
    return _plain("slack_bot_token", "saas", f"xoxb-{_pick(rng, DIGITS, 12)}-{_pick(rng, DIGITS, 13)}-"
                  + _mixed(rng, ALNUM, 24), "chat_bot")


@_format
def stripe_live_secret(rng):
    return _plain("stripe_live_secret", "saas", "sk_live_" + _mixed(rng, ALNUM, 24), "payments")


@_format
def twilio_api_key(rng):
    return _plain("twilio_api_key", "saas", "SK" + _pick(rng, HEX, 32), "sms")


@_format
def sendgrid_api_key(rng):
    return _plain("sendgrid_api_key", "saas", "SG." + _mixed(rng, URLSAFE, 22) + "." + _mixed(rng, URLSAFE, 43), "mail")


@_format
def openai_project_key(rng):
    return _plain("openai_project_key", "saas", "sk-proj-" + _mixed(rng, URLSAFE, 48), "llm")


@_format
def huggingface_token(rng):
    return _plain("huggingface_token", "saas", "hf_" + _mixed(rng, ALNUM, 34), "hub")


@_format
def npm_token(rng):
    return _plain("npm_token", "saas", "npm_" + _mixed(rng, ALNUM, 36), "registry")


@_format
def pypi_token(rng):
    return _plain("pypi_token", "saas", "pypi-AgEIcHlwaS5vcmc" + _mixed(rng, URLSAFE, 80), "index")


@_format
def databricks_pat(rng):
    return _plain("databricks_pat", "saas", "dapi" + _pick(rng, HEX, 32), "workspace")


@_format
def vault_token(rng):
    return _plain("vault_token", "saas", "hvs." + _mixed(rng, URLSAFE, 90), "vault")


@_format
def jwt_token(rng):
    return _plain("jwt", "header", _jwt(rng), "session_blob")


# -- connection strings and URLs --------------------------------------------------------------
@_format
def odbc_connection_string(rng):
    pw = _password(rng)
    head = "Driver={ODBC Driver 18 for SQL Server};Server=tcp:sql.example.net,1433;Database=etl;Uid=etl_user;"
    return Credential("odbc_connection_string", "connection", f"{head}Pwd={pw};Encrypt=yes",
                      f"{head}Pwd=***;Encrypt=yes", (pw,), "warehouse", f"{head}Pwd={pw};Encrypt=yes")


@_format
def postgres_url(rng):
    pw = _password(rng)
    return Credential("postgres_url", "url", f"postgresql://etl:{pw}@db.internal:5432/warehouse",
                      "postgresql://etl:***@db.internal:5432/warehouse", (pw,), "source_db",
                      f"postgresql://etl:{pw}@db.internal:5432/warehouse")


@_format
def redis_url(rng):
    pw = _password(rng)
    return Credential("redis_url", "url", f"redis://:{pw}@cache.internal:6379/0", "redis://:***@cache.internal:6379/0",
                      (pw,), "cache", f"redis://:{pw}@cache.internal:6379/0")


@_format
def mongodb_srv_url(rng):
    pw = _password(rng)
    text = f"mongodb+srv://app:{pw}@cluster0.ab1cd.mongodb.net/?retryWrites=true&w=majority"
    return Credential("mongodb_srv_url", "url", text,
                      "mongodb+srv://app:***@cluster0.ab1cd.mongodb.net/?retryWrites=true&w=majority", (pw,),
                      "docs", text)


@_format
def jdbc_password_parameter(rng):
    pw = _password(rng)
    text = f"jdbc:postgresql://db.internal:5432/etl?user=etl&password={pw}&ssl=true"
    return Credential("jdbc_password_parameter", "connection", text,
                      "jdbc:postgresql://db.internal:5432/etl?user=etl&password=***&ssl=true", (pw,), "jdbc", text)


# -- webhooks ---------------------------------------------------------------------------------
@_format
def slack_webhook(rng):
    path = f"T{_pick(rng, UPPER + DIGITS, 8)}/B{_pick(rng, UPPER + DIGITS, 10)}/{_mixed(rng, ALNUM, 24)}"
    return Credential("slack_webhook", "webhook", f"https://hooks.slack.com/services/{path}",
                      "https://hooks.slack.com/services/***", (path.split("/")[-1], path), "alerts_hook",
                      f"https://hooks.slack.com/services/{path}")


@_format
def discord_webhook(rng):
    path = f"{_pick(rng, DIGITS, 18)}/{_mixed(rng, URLSAFE, 68)}"
    return Credential("discord_webhook", "webhook", f"https://discord.com/api/webhooks/{path}",
                      "https://discord.com/api/webhooks/***", (path.split("/")[-1],), "community_hook",
                      f"https://discord.com/api/webhooks/{path}")


@_format
def teams_webhook(rng):
    def uuid() -> str:
        h = _pick(rng, HEX, 32)
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    secret = _pick(rng, HEX, 32)
    path = f"webhookb2/{uuid()}@{uuid()}/IncomingWebhook/{secret}/{uuid()}"
    return Credential("teams_webhook", "webhook", f"https://acme.webhook.office.com/{path}",
                      "https://acme.webhook.office.com/***", (secret,), "teams_hook", f"https://acme.webhook.office.com/{path}")


# -- headers ----------------------------------------------------------------------------------
@_format
def bearer_header(rng):
    tok = _mixed(rng, URLSAFE + ".", 40)
    return Credential("bearer_header", "header", f"Authorization: Bearer {tok}", "Authorization: Bearer ***", (tok,),
                      "upstream_header", f"Authorization: Bearer {tok}")


@_format
def basic_auth_header(rng):
    cred = base64.b64encode(f"etl:{_password(rng)}".encode()).decode()
    return Credential("basic_auth_header", "header", f"Authorization: Basic {cred}", "Authorization: Basic ***",
                      (cred,), "proxy_header", f"Authorization: Basic {cred}")


# -- private keys -----------------------------------------------------------------------------
@_format
def rsa_private_key(rng):
    pem, line = _pem(rng, "RSA PRIVATE KEY")
    return Credential("rsa_private_key", "private_key", pem,
                      "-----BEGIN RSA PRIVATE KEY-----***-----END RSA PRIVATE KEY-----", (line,), "tls_material", pem)


@_format
def openssh_private_key(rng):
    pem, line = _pem(rng, "OPENSSH PRIVATE KEY")
    return Credential("openssh_private_key", "private_key", pem,
                      "-----BEGIN OPENSSH PRIVATE KEY-----***-----END OPENSSH PRIVATE KEY-----", (line,),
                      "deploy_key", pem)


# -- secrets named by their key ---------------------------------------------------------------
@_format
def passcode(rng):
    code = f"{rng.choice(['Zebra', 'Quill', 'Otter', 'Maple'])}-{_pick(rng, DIGITS, 4)}-{_mixed(rng, ALNUM, 6)}"
    return Credential("passcode", "keyword", f"passcode={code}", "passcode=***", (code,), "passcode", code)


@_format
def yaml_password(rng):
    pw = _password(rng)
    return Credential("yaml_password", "keyword", f"password: {pw}", "password: ***", (pw,), "password", pw)


@_format
def json_api_key(rng):
    key = _mixed(rng, ALNUM, 32)
    return Credential("json_api_key", "keyword", json.dumps({"api_key": key, "region": "eu"}),
                      json.dumps({"api_key": "***", "region": "eu"}), (key,), "api_key", key)


def corpus(seed: int = 0) -> list[Credential]:
    """Every format once, with fresh random values drawn from ``seed``."""
    rng = random.Random(seed)
    return [make(rng) for make in _MAKERS]
