"""Recorded history as events: ``export`` (fill a backend with years of runs) and ``resend``
(deliver what the outbox holds).

Both rebuild events from the audit records with the same builder the live publisher uses, so the
same run gets the same OpenLineage run id and the same facets however it is sent. The schema of
an input table version is taken from the record of the run that wrote that version (its
``output_schema_json`` is the schema of exactly that version), which lets an export of three
years of history run without opening a single Delta log; versions no recorded run wrote fall
back to the table's log.

External runs (received from other producers, component ``external:...``) are not exported: their
producer already published them, under their own run ids.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from tracelake.lineage.openlineage.context import make_builder, schema_lookup
from tracelake.lineage.openlineage.outbox import Outbox
from tracelake.lineage.query.graph import recorded_runs
from tracelake.lineage.record.audit_tables import CHECK_RESULTS

if TYPE_CHECKING:
    from tracelake.lineage.lakehouse import Lakehouse

__all__ = ["EXTERNAL_PREFIX", "ExportFailed", "ExportResult", "ResendResult", "checks_by_run", "export_events",
           "export_to", "load_runs", "resend"]

EXTERNAL_PREFIX = "external:"


def load_runs(lake: Lakehouse, *, since: datetime | None = None, until: datetime | None = None,
              component: str | None = None, run_ids: Iterable[str] | None = None,
              include_external: bool = False) -> tuple[list[dict[str, Any]], pa.Table]:
    """(matching records oldest first, every record as Arrow). Open runs are included as
    ``started`` (their START is history too); a record both flushed and journaled counts once."""
    data = recorded_runs(lake)
    everything = data
    mask = pc.invert(pc.starts_with(pc.fill_null(data.column("component"), ""), pattern=EXTERNAL_PREFIX)) \
        if not include_external else None
    if component is not None:
        hit = pc.equal(data.column("component"), component)
        mask = hit if mask is None else pc.and_(mask, hit)
    if since is not None:
        hit = pc.greater_equal(data.column("started_at"), pa.scalar(since, data.schema.field("started_at").type))
        mask = hit if mask is None else pc.and_(mask, hit)
    if until is not None:
        hit = pc.less(data.column("started_at"), pa.scalar(until, data.schema.field("started_at").type))
        mask = hit if mask is None else pc.and_(mask, hit)
    if run_ids is not None:
        hit = pc.is_in(data.column("run_id"), value_set=pa.array(sorted(set(run_ids)), pa.string()))
        mask = hit if mask is None else pc.and_(mask, hit)
    if mask is not None:
        data = data.filter(pc.fill_null(mask, False))
    data = data.take(pc.sort_indices(data, [("run_id", "ascending")]))
    return data.to_pylist(), everything


def checks_by_run(lake: Lakehouse, run_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    wanted = pa.array(sorted(set(run_ids)), pa.string())
    data = lake.store.read_arrow(CHECK_RESULTS)
    if not len(data) or not len(wanted):
        return {}
    data = data.filter(pc.fill_null(pc.is_in(data.column("run_id"), value_set=wanted), False))
    out: dict[str, list[dict[str, Any]]] = {}
    for row in data.to_pylist():
        out.setdefault(row["run_id"], []).append(row)
    return out


def _schema_index(lake: Lakehouse, everything: pa.Table) -> Callable[[str, int], str | None]:
    """``(path, version) -> schema``: the writer's recorded schema, else the table's log."""
    layout = lake.layout
    landed = everything.filter(pc.and_(pc.is_valid(everything.column("output_version")),
                                       pc.is_valid(everything.column("output_schema_json"))))
    known: dict[tuple[str, int], str] = {}
    columns = [landed.column(c).to_pylist() for c in ("output_table", "output_path", "output_version",
                                                       "output_schema_json")]
    for table, path, version, schema in zip(*columns, strict=True):
        where = layout.resolve(table, path)
        if where:
            known[(where, int(version))] = schema
    fallback = schema_lookup()

    def schema_of(path: str, version: int) -> str | None:
        hit = known.get((path, int(version)))
        return hit if hit is not None else fallback(path, version)

    return schema_of


@dataclass
class ExportResult:
    runs: int = 0
    events: int = 0
    seconds: float = 0.0
    by_type: dict[str, int] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def export_events(lake: Lakehouse, sink: Callable[[Any], None], *, since: datetime | None = None,
                  until: datetime | None = None, component: str | None = None) -> ExportResult:
    """Build every event of the matching runs, oldest first, and hand each to ``sink``."""
    t0 = time.perf_counter()
    records, everything = load_runs(lake, since=since, until=until, component=component)
    checks = checks_by_run(lake, [r["run_id"] for r in records])
    builder = make_builder(lake.settings, lake.store, schema_of=_schema_index(lake, everything))
    result = ExportResult(runs=len(records))
    for record in records:
        for event in builder.events(record, checks.get(record["run_id"], [])):
            sink(event)
            result.events += 1
            kind = event.eventType.value
            result.by_type[kind] = result.by_type.get(kind, 0) + 1
    result.seconds = time.perf_counter() - t0
    return result


class ExportFailed(Exception):
    """A run's events could not be delivered: how many were, and where to continue from."""

    def __init__(self, sent: int, resume_since: Any, error: BaseException):
        super().__init__(f"delivery failed after {sent} events: {error}")
        self.sent, self.resume_since, self.error = sent, resume_since, error


def export_to(lake: Lakehouse, client_factory: Callable[[], Any], *, workers: int = 4, retries: int = 2,
              since: datetime | None = None, until: datetime | None = None,
              component: str | None = None) -> ExportResult:
    """Send every event of the matching runs through clients made by ``client_factory`` (one per
    worker thread). A run's events go in order through one worker; runs go in parallel, so the
    round trips to a backend overlap while this thread builds the next events. The first run that
    cannot be delivered stops the export (:class:`ExportFailed` says from when to continue:
    the start of the oldest run not known to be delivered - a few may be sent twice, which a
    backend takes as the same run)."""
    from tracelake.lineage.openlineage.transport import send

    t0 = time.perf_counter()
    records, everything = load_runs(lake, since=since, until=until, component=component)
    checks = checks_by_run(lake, [r["run_id"] for r in records])
    builder = make_builder(lake.settings, lake.store, schema_of=_schema_index(lake, everything))
    local = threading.local()
    result = ExportResult(runs=len(records))
    sent = [0]
    lock = threading.Lock()

    def deliver(events: list[Any]) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = client_factory()
        for event in events:
            send(client, event, retries=retries)
            with lock:
                sent[0] += 1

    failed: list[tuple[Any, BaseException]] = []
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="tracelake-export") as pool:
        pending: dict[Future, Any] = {}

        def settle(done: Iterable[Future]) -> None:
            for future in done:
                started = pending.pop(future)
                error = future.exception()
                if error is not None:
                    failed.append((started, error))

        for record in records:
            events = builder.events(record, checks.get(record["run_id"], []))
            for event in events:
                kind = event.eventType.value
                result.by_type[kind] = result.by_type.get(kind, 0) + 1
            result.events += len(events)
            pending[pool.submit(deliver, events)] = record["started_at"]
            if len(pending) >= 4 * max(1, workers):
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                settle(done)
            if failed:
                break
        settle(wait(list(pending))[0])
    result.seconds = time.perf_counter() - t0
    if failed:
        raise ExportFailed(sent[0], min(started for started, _ in failed), failed[0][1])
    return result


@dataclass
class ResendResult:
    sent: int = 0
    failed: int = 0
    remaining: int = 0
    problems: list[str] = field(default_factory=list)


def resend(lake: Lakehouse, client: Any, *, retries: int | None = None) -> ResendResult:
    """Send the outbox again, oldest first; stop at the first delivery failure (the backend is
    still down: the rest stays in the outbox, with the new error)."""
    from tracelake.lineage.openlineage.transport import DISABLED_MESSAGE, DeliveryFailed, is_disabled, send

    if is_disabled(client):   # it would "deliver" everything and empty the outbox
        raise DeliveryFailed(DISABLED_MESSAGE)
    outbox = Outbox(lake.settings.openlineage_dir)
    pending = outbox.pending()
    result = ResendResult()
    if not pending:
        return result
    records, everything = load_runs(lake, run_ids={p.run_id for p in pending}, include_external=True)
    by_id = {r["run_id"]: r for r in records}
    checks = checks_by_run(lake, by_id)
    builder = make_builder(lake.settings, lake.store, schema_of=_schema_index(lake, everything))
    for item in _resendable(pending, by_id, result):
        record = by_id[item.run_id]
        event = builder.start(record) if item.kind == "start" else builder.end(record, checks.get(item.run_id, []))
        try:
            send(client, event, retries=lake.settings.openlineage_retries if retries is None else retries)
        except DeliveryFailed as exc:
            outbox.add(item.run_id, item.kind, f"resend failed: {exc}", event_type=event.eventType.value)
            outbox.backend_failed(str(exc))     # still down: publishing processes back off as well
            result.failed += 1
            break
        outbox.delivered(item)
        result.sent += 1
    if result.sent:
        outbox.count("resent", result.sent)
        if not result.failed:
            outbox.backend_recovered()         # it takes events again: no process needs to back off
    result.remaining = len(outbox.pending())
    return result


def _resendable(pending: list[Any], records: dict[str, dict[str, Any]], result: ResendResult) -> Iterator[Any]:
    for item in pending:
        record = records.get(item.run_id)
        if record is None:
            result.problems.append(f"run {item.run_id}: no audit record in this lakehouse; left in the outbox")
        elif item.kind == "end" and record.get("status") == "started":
            result.problems.append(f"run {item.run_id} is still open; its end event waits in the outbox")
        else:
            yield item
