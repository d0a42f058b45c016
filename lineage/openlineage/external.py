"""Received OpenLineage runs -> external run records, with every version checked against Delta.

A run of another producer that wrote a table (a ``spark-submit`` job with the OpenLineage Spark
listener, say) becomes one record in ``component_runs`` per table written - component
``external:<job>``, tag ``tracelake.external=true`` - so ``trace``, ``impact`` and every query
built on them cross it like any component run. What the producer *says* is never taken on trust:

**Inputs.** A ``version`` facet (the Spark listener sends one for catalog tables only) is
*verified* when the table's Delta log has that version, committed before the run ended; a
version the log does not have is recorded as ``unverified`` - kept in the record, never followed
by a trace. Without a facet (path-based reads) the version is *inferred*: the newest commit
before the run's START event, since Spark fixes the snapshot it reads before execution starts.
An inference is flagged (``tracelake.external.verified=false``), and called *ambiguous* when a
commit landed while the application was running (between its START and the run's START), since
the job may have loaded the table before or after that commit.

**Outputs.** The external commit names no Tracelake run in its ``userMetadata``, and the Spark
listener reports failed writes as COMPLETE, so the version written is found in the log: the
commits between the run's START and COMPLETE (plus ``SLACK_SECONDS`` for clock rounding - the
listener and the commit read the same driver clock), made by the engine the run reports
(``engineInfo`` ``Apache-Spark/...`` for Spark), that no recorded run claims already. Exactly
one is *verified* (a version facet must agree with it); several that the exact window cannot
tell apart are *ambiguous* - no version is recorded, the candidates are; none means nothing
landed: the run is recorded as ``failed`` whatever the producer said.

Runs that wrote nothing (reads, ``count()``) and application-level runs are stored as events but
make no record: they change no lineage. A table outside the lakehouse is recorded under its
location (name ``<folder>_<hash>``); a dataset that is not a Delta table is recorded as kind
``dataset``, without a version.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tracelake.lineage.openlineage.ids import external_run_id
from tracelake.lineage.openlineage.naming import dataset_uri, table_for_uri
from tracelake.lineage.openlineage.received import TERMINAL, event_seconds
from tracelake.lineage.record import delta_meta
from tracelake.lineage.record.redact import redact_mapping, scrub_text

if TYPE_CHECKING:
    from tracelake.lineage.lakehouse import Lakehouse

__all__ = ["EXTERNAL_TAG", "SLACK_SECONDS", "ExternalRun", "build_external_records", "external_table_name"]

SLACK_SECONDS = 0.05   # clock rounding only: the listener and the Delta commit read one driver clock
EXTERNAL_TAG = "tracelake.external"
_STATUS = {"COMPLETE": "succeeded", "FAIL": "failed", "ABORT": "abandoned"}


@dataclass
class ExternalRun:
    """What one received OpenLineage run became: records to chain, and why."""

    openlineage_run_id: str
    records: list[dict[str, Any]] = field(default_factory=list)
    detail: str = ""


def external_table_name(uri: str) -> str:
    """A table name for a dataset outside the lakehouse: its folder name and a hash of where it is."""
    base = re.sub(r"[^A-Za-z0-9_]", "_", uri.rstrip("/").rsplit("/", 1)[-1]) or "dataset"
    if not re.match(r"^[A-Za-z_]", base):
        base = f"t_{base}"
    return f"{base[:100]}_{hashlib.sha256(uri.encode()).hexdigest()[:8]}"


def _stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def _facet(dataset: Mapping[str, Any], key: str) -> Any:
    return (dataset.get("facets") or {}).get(key)


def _merged(events: Sequence[Mapping[str, Any]], side: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Datasets of one side across the run's events, START first (later events fill gaps)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        for ds in event.get(side) or []:
            key = (ds.get("namespace", ""), ds.get("name", ""))
            entry = out.setdefault(key, {"namespace": key[0], "name": key[1], "facets": {}, "by_type": {}})
            entry["by_type"].setdefault(event.get("eventType"), ds)
            for k, v in (ds.get("facets") or {}).items():
                entry["facets"].setdefault(k, v)
    return out


def _claimed_version(entry: Mapping[str, Any], prefer: Sequence[str]) -> int | None:
    """The ``version`` facet, from the events in ``prefer`` order (START for inputs: the Spark
    listener reports the post-write version on COMPLETE when a job reads what it writes)."""
    for kind in prefer:
        ds = entry["by_type"].get(kind)
        version = (_facet(ds, "version") or {}).get("datasetVersion") if ds else None
        if version is not None:
            try:
                return int(str(version))
            except ValueError:
                return None
    return None


class _Log:
    """Commit timestamps of one table, read newest first, once."""

    def __init__(self, uri: str):
        self.uri = uri
        self.latest = delta_meta.latest_version(uri)
        self._commits: dict[int, delta_meta.Commit | None] = {}

    def commit(self, version: int) -> delta_meta.Commit | None:
        if version not in self._commits:
            try:
                self._commits[version] = delta_meta.read_commit(self.uri, version)
            except delta_meta.CommitMissing:
                self._commits[version] = None
        return self._commits[version]

    def since(self, ms: float) -> list[delta_meta.Commit]:
        """Commits at or after ``ms``, newest first (stops at the first older one)."""
        out = []
        for v in range(self.latest if self.latest is not None else -1, -1, -1):
            commit = self.commit(v)
            if commit is None:
                break
            if int(commit.info.get("timestamp", 0)) < ms:
                break
            out.append(commit)
        return out

    def newest_at_or_before(self, ms: float) -> delta_meta.Commit | None:
        for v in range(self.latest if self.latest is not None else -1, -1, -1):
            commit = self.commit(v)
            if commit is None:
                return None
            if int(commit.info.get("timestamp", 0)) <= ms:
                return commit
        return None


def _resolve(lake: Lakehouse, namespace: str, name: str) -> tuple[str, str]:
    """(table name, location) of an OpenLineage dataset."""
    uri = dataset_uri(namespace, name)
    table = table_for_uri(lake.layout, uri)
    return (table, lake.layout.table(table)) if table else (external_table_name(uri), uri)


def _input(lake: Lakehouse, entry: Mapping[str, Any], start_ms: float, end_ms: float,
           app_start_ms: float | None) -> tuple[dict[str, Any], str, bool]:
    """(input entry, what was established, verified?) for one input dataset."""
    table, uri = _resolve(lake, entry["namespace"], entry["name"])
    base = {"name": table, "path": uri, "partitions": None, "missing_partitions": None}
    if not delta_meta.table_exists(uri):
        return {**base, "kind": "dataset", "version": None}, "not a Delta table: no version", False
    log = _Log(uri)
    claimed = _claimed_version(entry, ["START", "RUNNING", *TERMINAL])
    slack = SLACK_SECONDS * 1000
    if claimed is not None:
        commit = log.commit(claimed)
        if commit is None:
            return ({**base, "kind": "unverified", "version": claimed},
                    f"v{claimed} unverified: the producer's version is not in the Delta log", False)
        if int(commit.info.get("timestamp", 0)) > end_ms + slack:
            return ({**base, "kind": "unverified", "version": claimed},
                    f"v{claimed} unverified: committed at {_stamp(commit.info['timestamp'])}, after the run ended",
                    False)
        return ({**base, "kind": "table", "version": claimed}, f"v{claimed} verified: version facet, in the Delta log",
                True)
    commit = log.newest_at_or_before(start_ms + slack)
    if commit is None:
        return ({**base, "kind": "unverified", "version": None},
                "unverified: no version facet, and no commit before the run started", False)
    note = f"v{commit.version} inferred: newest commit before the run's START (no version facet)"
    if app_start_ms is not None:
        during = [c.version for c in log.since(app_start_ms) if c.version <= commit.version]
        if during:
            note += (f"; ambiguous: v{min(during)}..v{max(during)} landed while the application ran, "
                     "it may have read an older version")
    return {**base, "kind": "table", "version": commit.version}, note, False


def _engine_matches(commit: delta_meta.Commit, engine: str | None) -> bool:
    if not engine:
        return True
    info = str(commit.info.get("engineInfo") or "")
    return info.startswith("Apache-Spark") if engine.lower() == "spark" else True


def _output(lake: Lakehouse, entry: Mapping[str, Any], start_ms: float, end_ms: float, engine: str | None,
            claimed: set[tuple[str, int]]) -> tuple[str, str, delta_meta.Commit | None, str, bool]:
    """(table, location, commit or None, what was established, verified?) for one output."""
    table, uri = _resolve(lake, entry["namespace"], entry["name"])
    said = _claimed_version(entry, [*TERMINAL, "RUNNING", "START"])
    if not delta_meta.table_exists(uri):
        return table, uri, None, "not a Delta table: no version can be established", False
    log = _Log(uri)
    slack = SLACK_SECONDS * 1000
    window = [c for c in log.since(start_ms - slack) if int(c.info.get("timestamp", 0)) <= end_ms + slack]
    candidates = [c for c in window if c.run_id is None and _engine_matches(c, engine)
                  and (uri, c.version) not in claimed]
    if said is not None:
        hit = [c for c in candidates if c.version == said]
        if hit:
            return table, uri, hit[0], f"v{said} verified: version facet matches the commit in the run's window", True
        where = "is not in the Delta log" if log.commit(said) is None else "is not a commit of this run's window"
        return table, uri, None, f"unverified: the producer's version v{said} {where}", False
    if len(candidates) > 1:
        strict = [c for c in candidates if start_ms <= int(c.info.get("timestamp", 0)) <= end_ms]
        candidates = strict if len(strict) == 1 else candidates
    if len(candidates) == 1:
        c = candidates[0]
        return (table, uri, c, f"v{c.version} verified: the only {engine or ''} commit between START and the end "
                               f"({_stamp(c.info['timestamp'])})".replace("  ", " "), True)
    if candidates:
        versions = ", ".join(f"v{c.version}" for c in sorted(candidates, key=lambda c: c.version))
        return table, uri, None, f"ambiguous: {versions} all landed in the run's window; none recorded", False
    return table, uri, None, "no commit: nothing landed between the run's START and its end", False


@dataclass
class _RunFacts:
    """What one OpenLineage run says about itself, gathered once from its events (and its
    application's): the time window, the engine, the job and the facets every record carries."""

    run_id: str
    end: Mapping[str, Any]
    start_ms: float
    end_ms: float
    app_start_ms: float | None
    run_facets: dict[str, Any]      # the application's facets, then the run's own
    own: dict[str, Any]             # the run's own facets only

    @property
    def engine_facet(self) -> dict[str, Any]:
        return self.run_facets.get("processing_engine") or {}

    @property
    def engine(self) -> str | None:
        return self.engine_facet.get("name")

    @property
    def job(self) -> Mapping[str, Any]:
        return self.end["job"]

    @property
    def parent(self) -> dict[str, Any]:
        return self.own.get("parent") or {}

    @property
    def parent_job(self) -> str | None:
        return (self.parent.get("job") or {}).get("name")


def _run_facts(events: Sequence[Mapping[str, Any]], app_events: Sequence[Mapping[str, Any]],
               end: Mapping[str, Any]) -> _RunFacts:
    starts = [e for e in events if e.get("eventType") == "START"]
    app_starts = sorted((e for e in app_events if e.get("eventType") == "START"), key=event_seconds)
    app_start_ms = event_seconds(app_starts[0]) * 1000 if app_starts else None
    first = starts[0] if starts else (app_starts[0] if app_starts else end)
    run_facets: dict[str, Any] = {}
    own: dict[str, Any] = {}
    for e in app_events:
        run_facets.update((e.get("run") or {}).get("facets") or {})
    for e in events:
        own.update((e.get("run") or {}).get("facets") or {})
    run_facets.update(own)
    return _RunFacts(events[-1]["run"]["runId"], end, event_seconds(first) * 1000, event_seconds(end) * 1000,
                     app_start_ms, run_facets, own)


def build_external_records(lake: Lakehouse, events: Sequence[Mapping[str, Any]],
                           app_events: Sequence[Mapping[str, Any]] = (),
                           claimed: set[tuple[str, int]] | None = None) -> ExternalRun:
    """The records one OpenLineage run makes (one per table written); see the module docstring."""
    events = sorted(events, key=event_seconds)
    result = ExternalRun(events[-1]["run"]["runId"])
    terminal = [e for e in events if e.get("eventType") in TERMINAL]
    if not terminal:
        result.detail = "no COMPLETE, FAIL or ABORT yet"
        return result
    outputs = _merged(events, "outputs")
    if not outputs:
        result.detail = "wrote nothing (no output datasets): no lineage to record"
        return result
    facts = _run_facts(events, app_events, terminal[-1])
    inputs, notes, verified = [], {}, True
    for entry in _merged(events, "inputs").values():
        inp, note, ok = _input(lake, entry, facts.start_ms, facts.end_ms, facts.app_start_ms)
        inputs.append(inp)
        notes[f"tracelake.external.input.{inp['name']}"] = note
        verified &= ok
    claimed = claimed if claimed is not None else set()
    shared = _shared_fields(facts, inputs)
    for entry in outputs.values():
        table, uri, commit, out_note, out_ok = _output(lake, entry, facts.start_ms, facts.end_ms, facts.engine,
                                                       claimed)
        status, errors = _status_and_error(facts, commit, out_note, table)
        record = _record(facts.run_id, table, uri, facts.start_ms, facts.end_ms, status, commit, lake)
        record.update({**shared, "tags": _tags(facts, out_note, verified and out_ok, notes), **errors})
        if commit is not None:
            claimed.add((uri, commit.version))
        result.records.append(record)
    result.detail = "; ".join(f"{r['output_table']}@v{r['output_version']}" if r["output_version"] is not None
                              else f"{r['output_table']} (no version: {r['tags']['tracelake.external.output']})"
                              for r in result.records)
    return result


def _shared_fields(facts: _RunFacts, inputs: list[dict[str, Any]]) -> dict[str, Any]:
    """The record fields every table the run wrote gets alike: who ran what, where, with which inputs."""
    job, engine, engine_facet = facts.job, facts.engine, facts.engine_facet
    parent_job = facts.parent_job
    job_name = parent_job if parent_job and job["name"].startswith(parent_job + ".") else job["name"]
    libraries = {k: v for k, v in (("spark", engine_facet.get("version") if engine == "spark" else None),
                                   (f"openlineage-{engine or 'producer'}",
                                    engine_facet.get("openlineageAdapterVersion")))
                 if v}
    details = facts.run_facets.get("spark_applicationDetails") or {}
    config = redact_mapping({"job": f"{job['namespace']}/{job['name']}",
                             "spark_properties": (facts.run_facets.get("spark_properties") or {}).get("properties",
                                                                                                       {})})
    # tags and the error fields differ per output; their places here keep the record's field order
    return {"component": f"external:{job_name}", "asset_key": f"{job['namespace']}/{job['name']}",
            "inputs": inputs, "tags": None, "library_versions": libraries,
            "config_json": json.dumps(config, sort_keys=True),
            "error_type": None, "error_message": None, "error_trace": None,
            "host": details.get("driverHost"), "owner": details.get("userName"),
            "git_commit": (facts.run_facets.get("sourceCodeLocation") or {}).get("version")}


def _tags(facts: _RunFacts, out_note: str, verified: bool, notes: dict[str, str]) -> dict[str, str]:
    job, end, parent = facts.job, facts.end, facts.parent
    tags = {EXTERNAL_TAG: "true", "openlineage.job": f"{job['namespace']}/{job['name']}",
            "openlineage.run_id": facts.run_id, "openlineage.event_type": end["eventType"],
            "openlineage.producer": str(end.get("producer", "")),
            "tracelake.external.output": out_note,
            "tracelake.external.verified": "true" if verified else "false", **notes}
    if parent.get("run", {}).get("runId"):
        parent_ns = (parent.get("job") or {}).get("namespace")
        tags["openlineage.parent"] = f"{parent_ns}/{facts.parent_job}@{parent['run']['runId']}"
    return tags


def _status_and_error(facts: _RunFacts, commit: delta_meta.Commit | None, out_note: str,
                      table: str) -> tuple[str, dict[str, Any]]:
    """Status and error fields of one output's record: the producer's error on FAIL, and a
    COMPLETE whose write is not in the Delta log recorded as failed."""
    status = _STATUS[facts.end["eventType"]]
    error = (facts.own.get("errorMessage") or {}) if facts.end.get("eventType") == "FAIL" else {}
    error_type, error_message, error_trace = None, None, None
    if error:
        error_type, error_message = "openlineage.ErrorMessage", scrub_text(str(error.get("message", "")))[:4000]
        error_trace = scrub_text(str(error.get("stackTrace") or ""))[-16000:] or None
    if status == "succeeded" and commit is None and out_note.startswith("no commit"):
        status, error_type = "failed", "tracelake.ExternalWriteNotFound"
        error_message = (f"the producer reported COMPLETE, but no commit of {table} landed between the run's "
                         "START and COMPLETE: the write failed (the Spark listener reports failed writes as "
                         "COMPLETE) or wrote nothing")
    return status, {"error_type": error_type, "error_message": error_message, "error_trace": error_trace}


def _record(ol_run_id: str, table: str, uri: str, start_ms: float, end_ms: float, status: str,
            commit: delta_meta.Commit | None, lake: Lakehouse) -> dict[str, Any]:
    started = datetime.fromtimestamp(start_ms / 1000, tz=UTC)
    ended = datetime.fromtimestamp(end_ms / 1000, tz=UTC)
    record: dict[str, Any] = {
        "run_id": external_run_id(ol_run_id, uri, int(start_ms)), "partition_key": None, "dagster_run_id": None,
        "status": status, "started_at": started, "ended_at": ended, "duration_ms": end_ms - start_ms,
        "output_table": table, "output_path": uri, "openlineage_run_id": ol_run_id, "models": [], "metrics": {},
        "output_version": None,
    }
    if commit is not None:
        schema_hash, schema_json = delta_meta.schema_fingerprint(delta_meta.schema_at(uri, commit.version))
        params = commit.info.get("operationParameters") or {}
        # A whole-table overwrite replaces every earlier row; anything else (append, MERGE, a
        # replaceWhere overwrite) leaves earlier writers' rows in place.
        whole = str(params.get("mode", "")).lower() == "overwrite" and not params.get("predicate")
        rows = commit.rows_added
        if rows is None:
            rows = int((commit.info.get("operationMetrics") or {}).get("numOutputRows", 0))
        record.update(output_version=commit.version, output_rows=rows, output_files=len(commit.adds),
                      output_bytes=commit.bytes_added, output_schema_hash=schema_hash, output_schema_json=schema_json,
                      content_digest=delta_meta.files_digest(uri, commit) if lake.digest_files else None,
                      write_mode="overwrite" if whole else "append")
    return record
