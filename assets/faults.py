"""Fault injection for the reference pipeline, selected by configuration.

A fault is ``kind@DATE`` (that day), ``kind@START..END`` (inclusive range) or ``kind@START..``
(from that day on), optionally with a parameter after a colon::

    etl_bug@2026-01-20                 cleaned_trips writes fares in cents that day
    covariate_shift@2026-01-22..       a new pickup zone (Lakeside) takes a quarter of the trips
    concept_drift@2026-01-19..         tipping behaviour changes (card riders tip far less)
    schema_break@2026-01-23            raw trips arrive with `fare_amount` renamed to `fare_usd` (text)
    missing_partition@2026-01-24       that day's raw trips never arrive
    late_labels@2026-01-12:3           labels for that day's trips arrive 3 days later than usual
    missing_labels@2026-01-13:0.5      half of that day's labels never arrive

``TRACELAKE_SIM_FAULTS`` takes a comma-separated list of these.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

__all__ = ["FAULT_KINDS", "Fault", "FaultPlan", "parse_faults"]

FAULT_KINDS = {
    "etl_bug": None,
    "covariate_shift": None,
    "concept_drift": None,
    "schema_break": None,
    "missing_partition": None,
    "late_labels": 2.0,       # extra days of delay
    "missing_labels": 0.5,    # fraction of labels lost
}


@dataclass(frozen=True)
class Fault:
    kind: str
    start: date
    end: date | None  # None: open-ended
    param: float | None = None

    def active(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)

    @property
    def amount(self) -> float:
        """The fault's number (days of delay, fraction lost); only kinds that take one have it."""
        if self.param is None:
            raise ValueError(f"fault {self} takes no parameter")
        return self.param

    def __str__(self) -> str:
        end = self.end.isoformat() if self.end else ""
        span = self.start.isoformat() if self.end == self.start else f"{self.start.isoformat()}..{end}"
        shows_param = self.param is not None and FAULT_KINDS[self.kind] is not None
        return f"{self.kind}@{span}" + (f":{self.param:g}" if shows_param else "")


def _parse_date(text: str, spec: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"fault {spec!r}: {text!r} is not a date (use YYYY-MM-DD)") from None


def parse_fault(spec: str) -> Fault:
    spec = spec.strip()
    if "@" not in spec:
        raise ValueError(f"fault {spec!r} needs a date: kind@YYYY-MM-DD (kinds: {', '.join(FAULT_KINDS)})")
    kind, rest = spec.split("@", 1)
    kind = kind.strip()
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; known kinds: {', '.join(FAULT_KINDS)}")
    param = FAULT_KINDS[kind]
    if ":" in rest:
        rest, raw = rest.split(":", 1)
        try:
            param = float(raw)
        except ValueError:
            raise ValueError(f"fault {spec!r}: parameter {raw!r} is not a number") from None
    if ".." in rest:
        a, b = rest.split("..", 1)
        start = _parse_date(a, spec)
        end = _parse_date(b, spec) if b else None
    else:
        start = end = _parse_date(rest, spec)
    if end is not None and end < start:
        raise ValueError(f"fault {spec!r}: the range ends before it starts")
    if kind == "missing_labels" and not (param is not None and 0 < param <= 1):
        raise ValueError(f"fault {spec!r}: the lost fraction must be in (0, 1]")
    if kind == "late_labels" and (param is None or param < 1):
        raise ValueError(f"fault {spec!r}: the extra delay must be at least 1 day")
    return Fault(kind, start, end, param)


@dataclass(frozen=True)
class FaultPlan:
    faults: tuple[Fault, ...] = ()

    @classmethod
    def parse(cls, specs: Iterable[str] | str | None) -> FaultPlan:
        if specs is None:
            return cls()
        if isinstance(specs, str):
            specs = [s for s in specs.split(",") if s.strip()]
        return cls(tuple(parse_fault(s) for s in specs))

    def active(self, kind: str, day: date) -> Fault | None:
        for fault in self.faults:
            if fault.kind == kind and fault.active(day):
                return fault
        return None

    def __str__(self) -> str:
        return ",".join(str(f) for f in self.faults)


def parse_faults(specs: Iterable[str] | str | None) -> FaultPlan:
    return FaultPlan.parse(specs)
