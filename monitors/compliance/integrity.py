"""The integrity section every report ends with: where each audit chain stood when the report was
built, and the results of ``tracelake audit verify`` and ``tracelake retention verify`` run then.

Retention verification is recorded (``audit.retention_checks``), like when the daily job runs
it, so the report cites checks that are themselves in the chain.
"""

from __future__ import annotations

from typing import Any

from tracelake.lineage.integrity.retention import verify_retention
from tracelake.lineage.integrity.verify import verify_lakehouse
from tracelake.monitors.compliance.records import Records

__all__ = ["chain_heads_table", "integrity_checks", "integrity_section"]


def integrity_checks(records: Records, *, retention: bool = True) -> dict[str, Any]:
    """Run ``audit verify`` (and ``retention verify``) now; results as plain data."""
    lake = records.lake
    try:
        audit = verify_lakehouse(lake)
        out: dict[str, Any] = {
            "audit_verify": {"ok": audit.ok, "records": audit.checked_records, "runs": audit.checked_runs,
                             "tables": dict(audit.tables), "problems": list(audit.problems)},
        }
    except Exception as exc:  # a verification that cannot finish is a finding of the report, not a crash
        out = {"audit_verify": {"ok": False, "records": 0, "runs": 0, "tables": {},
                                "problems": [f"audit verify could not complete: {type(exc).__name__}: {exc}"]}}
    if retention:
        try:
            results = verify_retention(lake, record=True)
        except Exception as exc:
            out["retention_verify"] = {"ok": False, "tables": 0, "results": [
                {"table": "-", "ok": False,
                 "problems": f"retention verify could not complete: {type(exc).__name__}: {exc}"}]}
            return out
        out["retention_verify"] = {
            "ok": all(r.ok for r in results), "tables": len(results),
            "results": [{"table": r.table, "kind": r.kind, "oldest_version": r.oldest_version,
                         "latest_version": r.latest_version, "ok": r.ok, "problems": "; ".join(r.problems),
                         "log_retention": r.log_retention} for r in results],
        }
    return out


def chain_heads_table(heads: list[dict[str, Any]]) -> dict[str, Any]:
    return {"title": "Audit chain heads when this report was built",
            "columns": ["table", "journal_id", "records", "chain_seq", "record_hash"],
            "rows": heads}


def integrity_section(checks: dict[str, Any], heads: list[dict[str, Any]]) -> dict[str, Any]:
    audit = checks["audit_verify"]
    facts = [["audit verify", f"{'OK' if audit['ok'] else 'PROBLEMS'}: {audit['records']} chained records, "
                              f"{audit['runs']} succeeded runs matched to their Delta commits"]]
    tables = [chain_heads_table(heads)]
    notes = []
    if audit["problems"]:
        tables.append({"title": "audit verify problems", "columns": ["problem"],
                       "rows": [{"problem": p} for p in audit["problems"]]})
    retention = checks.get("retention_verify")
    if retention is not None:
        bad = [r for r in retention["results"] if not r["ok"]]
        facts.append(["retention verify", f"{'OK' if retention['ok'] else 'PROBLEMS'}: oldest retained version of "
                                          f"{retention['tables']} tables read and matched to the audit "
                                          f"({len(bad)} with problems)"])
        tables.append({"title": "retention verify: oldest retained version of every table",
                       "columns": ["table", "kind", "oldest_version", "latest_version", "log_retention", "ok",
                                   "problems"],
                       "rows": retention["results"]})
    notes.append("This file's SHA-256 is chained into audit.reports when it is issued; "
                 "`tracelake report verify FILE` recomputes it and names the issuing record.")
    return {"id": "integrity", "title": "Integrity",
            "proves": "The records this report was built from were intact when it was built: every audit "
                      "chain re-hashed, every recorded output version found in its table's Delta log and "
                      "naming its run, and the oldest retained history still readable and matching what was "
                      "recorded at write time. The chain heads fix which records existed at that moment.",
            "facts": facts, "tables": tables, "notes": notes}
