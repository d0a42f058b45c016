from tracelake.lineage.record.redact import REDACTED, is_secret_key, redact_mapping, scrub_text


def test_secret_keys_are_redacted_but_data_keys_are_not():
    out = redact_mapping({
        "db": {"password": "hunter2-secret", "host": "db.local"},
        "api_key": "k-123456", "aws_secret_access_key": "AKIA0000", "token": "tok-999999",
        "partition_key": "2026-01-01", "sort_key": "trip_id", "primary_key": "id",
    })
    assert out["db"] == {"password": REDACTED, "host": "db.local"}
    assert out["api_key"] == out["aws_secret_access_key"] == out["token"] == REDACTED
    assert out["partition_key"] == "2026-01-01" and out["sort_key"] == "trip_id" and out["primary_key"] == "id"


def test_secret_values_seen_once_are_scrubbed_from_any_later_text():
    redact_mapping({"password": "correct-horse-battery"})
    text = scrub_text("login failed for correct-horse-battery at postgres://bob:pw1234@db/x token=abcdefgh")
    assert "correct-horse-battery" not in text and "pw1234" not in text and "abcdefgh" not in text
    assert "postgres://bob:***@db/x" in text


def test_key_classification():
    assert [is_secret_key(k) for k in ["apiKey", "clientSecret", "key", "sessionToken", "monkey", "keys_to_join"]] == [
        True, True, True, True, False, False]
