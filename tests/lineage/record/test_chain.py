"""The canonical form of an audit record and its chain hash, pinned by golden vectors: a verifier
written years from now, in any language, must compute exactly these bytes and hashes."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta, timezone

import pyarrow as pa

from tracelake.lineage.record.audit_tables import CHAIN_FIELDS, CHECK_RESULTS, COMPONENT_RUNS, AuditTable
from tracelake.lineage.record.chain import canonical_json, chain_hash, decode_payload, encode_payload, normalize_row

ROW = {"check_id": "01ABC", "run_id": "01RUN", "component": "cleaned_trips", "check_name": "fare_amount_range",
       "severity": "error", "passed": False, "blocking": False, "observed_value": 0.97, "failing_rows": 1940,
       "evaluated_at": datetime(2026, 1, 14, 6, 30, 5, 123456, tzinfo=UTC),
       "journal_id": "j1", "chain_seq": 0, "prev_hash": None, "record_hash": None,
       "recorded_at": datetime(2026, 1, 14, 6, 30, 6, tzinfo=UTC)}
GOLDEN_CANONICAL = (
    '{"blocking":false,"chain_seq":0,"check_id":"01ABC","check_name":"fare_amount_range","component":"cleaned_trips",'
    '"evaluated_at":"2026-01-14T06:30:05.123456Z","failing_rows":1940,"journal_id":"j1","observed_value":0.97,'
    '"passed":false,"recorded_at":"2026-01-14T06:30:06.000000Z","run_id":"01RUN","severity":"error"}')
GOLDEN_H0 = "6b523e5897fd5d755d6e79b99fe59edaa84f2c03471869e20bf2592a8a6959d2"
GOLDEN_H1 = "fe7f2dd2edc9a958c97df0afbfe87349a85714804d239734df5eb3fb42226d0e"


def test_golden_canonical_form_and_hashes():
    first = normalize_row(ROW, CHECK_RESULTS.schema)
    assert canonical_json(first) == GOLDEN_CANONICAL
    # The rule, stated independently: sha256(previous hash, newline, canonical JSON).
    assert hashlib.sha256(b"\n" + GOLDEN_CANONICAL.encode()).hexdigest() == GOLDEN_H0
    assert chain_hash(None, first) == GOLDEN_H0
    second = normalize_row(dict(ROW, check_id="01ABD", chain_seq=1, prev_hash=GOLDEN_H0, passed=True,
                                observed_value=0.0, failing_rows=0), CHECK_RESULTS.schema)
    assert chain_hash(GOLDEN_H0, second) == GOLDEN_H1


def test_adding_a_field_to_the_schema_never_changes_an_old_records_hash():
    grown = AuditTable("check_results", CHECK_RESULTS.schema.append(pa.field("added_later", pa.string())))
    assert chain_hash(None, normalize_row(ROW, grown.schema)) == GOLDEN_H0


def test_time_zones_and_map_order_do_not_change_the_hash():
    local = dict(ROW, evaluated_at=ROW["evaluated_at"].astimezone(timezone(timedelta(hours=9))))
    assert chain_hash(None, normalize_row(local, CHECK_RESULTS.schema)) == GOLDEN_H0
    run = {"run_id": "r", "tags": {"b": "2", "a": "1"}, "metrics": {"y": 1.0, "x": 2.0}}
    swapped = {"run_id": "r", "tags": {"a": "1", "b": "2"}, "metrics": {"x": 2.0, "y": 1.0}}
    assert canonical_json(normalize_row(run, COMPONENT_RUNS.schema)) == canonical_json(
        normalize_row(swapped, COMPONENT_RUNS.schema))


def test_any_change_to_a_field_changes_the_hash():
    base = normalize_row(ROW, CHECK_RESULTS.schema)
    for field, value in (("passed", True), ("observed_value", 0.970001), ("check_name", "fare_range"),
                         ("evaluated_at", ROW["evaluated_at"] + timedelta(microseconds=1))):
        assert chain_hash(None, normalize_row(dict(ROW, **{field: value}), CHECK_RESULTS.schema)) != GOLDEN_H0, field
    assert chain_hash("0" * 64, base) != GOLDEN_H0  # and the link to the previous record is part of it


def test_nan_has_one_spelling_and_unknown_fields_are_refused():
    nan = normalize_row(dict(ROW, observed_value=math.nan), CHECK_RESULTS.schema)
    assert '"observed_value":"NaN"' in canonical_json(nan)
    try:
        normalize_row(dict(ROW, surprise=1), CHECK_RESULTS.schema)
    except ValueError as exc:
        assert "surprise" in str(exc)
    else:
        raise AssertionError("an unknown field must be refused, not dropped")


def test_journal_payloads_round_trip_to_the_same_hash():
    first = normalize_row(ROW, CHECK_RESULTS.schema)
    back = decode_payload(encode_payload(first), CHECK_RESULTS.schema)
    assert chain_hash(None, back) == GOLDEN_H0


def test_an_audit_table_must_carry_the_chain_fields():
    assert all(f.name in CHECK_RESULTS.schema.names for f in CHAIN_FIELDS)
    try:
        AuditTable("bad", pa.schema([pa.field("id", pa.string())]))
    except ValueError as exc:
        assert "chain fields" in str(exc)
    else:
        raise AssertionError("a table without the chain fields must be refused")
