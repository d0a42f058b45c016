from tracelake.lineage.record.redact import REDACTED, is_secret_key, redact_mapping, redact_record, scrub_text


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


def test_tracelake_ids_are_never_taken_for_credentials():
    # An id minted in the second whose clock characters spell "A3T" matches detect-secrets' AWS
    # key pattern (A3T[A-Z0-9] + 16): a test run recorded a whole batch of metric ids as 01M8B***G.
    from tracelake.lineage.record.runid import _ALPHABET, new_run_id

    ms = 0
    for ch in "01M8BA3T00":
        ms = ms * 32 + _ALPHABET.index(ch)
    ids = [new_run_id(ms + i) for i in range(50)]
    assert all(scrub_text(i) == i for i in ids)
    assert redact_record({"metric_id": ids[0], "run_id": ids[1]}) == {"metric_id": ids[0], "run_id": ids[1]}
    # beside a real credential, the id stays and the credential goes
    assert scrub_text(f"run {ids[2]} used AKIAIOSFODNN7EXAMPLE") == f"run {ids[2]} used ***"
    # the same prefixes in the random part (ACCA, AGPA, APKA ...) are ids too
    assert scrub_text("01M8BAAMRRAGPA6E6ZYZAAR0DN") == "01M8BAAMRRAGPA6E6ZYZAAR0DN"


def test_only_tokens_whose_clock_reads_a_plausible_time_pass_as_ids():
    """A credential that happens to be 26 Crockford characters is not waved through: held out of
    the scan are only tokens whose first ten characters decode to 2020..2100."""
    from tracelake.lineage.record.runid import new_run_id

    key = "A3TXKQ7P2M9R4T6V8W0Y1Z3B5C"          # an AWS-shaped key; its "clock" reads year ~13,000
    assert "A3TXKQ7P2M9R4T6V8W0Y1Z3B5C" not in scrub_text(f"token {key} here")
    assert scrub_text(key) != key
    now = new_run_id()
    assert scrub_text(f"token {now} here") == f"token {now} here"


def test_a_text_that_spells_the_placeholder_is_left_as_it_was():
    from tracelake.lineage.record.runid import new_run_id

    run = new_run_id()
    text = f"literal <tracelake-id-0> and <tracelake-id-1> beside {run}"
    assert scrub_text(text) == text
