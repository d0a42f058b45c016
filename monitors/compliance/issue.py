"""Issuing a report (files + hashes + a chained record) and verifying an issued file later.

Issuing writes the JSON model, renders the HTML from it and prints the PDF from that HTML, then
appends one record to the ``reports`` audit table (declared here, chained like every audit
record): the SHA-256 of each file, the component-run records the report cites (with their
record hashes) and the head of every audit chain when it was built. The report id is in every
file (HTML meta tag and footer, PDF keywords and page footer, JSON field), so a file that was
altered - and therefore no longer matches any recorded hash - still names the record it broke.

``verify_file`` recomputes the SHA-256 and looks for an issuing record whose file has it; if
none does, it finds the record the file claims to come from and says what differs. The
``reports`` chain itself is re-verified, so a record rewritten to match an altered file is
caught too.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tracelake.lineage.lakehouse import Lakehouse
from tracelake.lineage.record.runid import new_run_id
from tracelake.monitors.audit_tables import REPORTS
from tracelake.monitors.compliance.evidence import sha256_file
from tracelake.monitors.compliance.render_html import render_html
from tracelake.monitors.compliance.render_pdf import render_pdf

__all__ = [
    "REPORTS",
    "FileVerdict",
    "IssuedReport",
    "issue_report",
    "issued_reports",
    "report_id_in",
    "verify_file",
]

_ID = re.compile(rb"tracelake-report-id:([0-9A-HJKMNP-TV-Z]{26})")


@dataclass
class IssuedReport:
    report_id: str
    kind: str
    subject: str
    title: str
    files: dict[str, dict[str, Any]]          # format -> {path, sha256, bytes}
    record: dict[str, Any]
    document: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def html(self) -> str:
        return self.files["html"]["path"]

    def summary(self) -> dict[str, Any]:
        return {"report_id": self.report_id, "kind": self.kind, "subject": self.subject, "title": self.title,
                "files": self.files, "record": {"table": REPORTS.name, "chain_seq": self.record["chain_seq"],
                                                "journal_id": self.record["journal_id"],
                                                "record_hash": self.record["record_hash"]}}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:120] or "report"


def default_out_dir(lake: Lakehouse, kind: str, subject: str, report_id: str) -> Path:
    return lake.layout.local_reports_root() / "compliance" / f"{kind}s" / _slug(subject) / report_id


def _write_atomic(path: Path, data: bytes | str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(data, str):
        tmp.write_text(data, encoding="utf-8")
    else:
        tmp.write_bytes(data)
    os.replace(tmp, path)


def issued_reports(lake: Lakehouse) -> list[dict[str, Any]]:
    rows = lake.store.read_arrow(REPORTS).to_pylist()     # plain Python lists and dicts, unlike pandas
    return sorted(rows, key=lambda r: (r["issued_at"], r["chain_seq"]))


def issue_report(lake: Lakehouse, document: dict[str, Any], *, subject: str, cited: list[dict[str, Any]],
                 params: dict[str, Any] | None = None, out_dir: str | Path | None = None, trigger: str = "cli",
                 dagster_run_id: str | None = None, pdf: bool = True) -> IssuedReport:
    """Write the JSON, HTML and PDF of ``document`` and chain their hashes into ``audit.reports``."""
    kind = document["kind"]
    report_id = new_run_id()
    document = {**document, "report_id": report_id, "format": "tracelake-compliance-report/1"}
    document.setdefault("built_from", {})["cited_runs"] = cited
    out = Path(out_dir) if out_dir else default_out_dir(lake, kind, subject, report_id)
    out.mkdir(parents=True, exist_ok=True)
    stem = _slug(f"{kind}-{subject}")
    paths = {"json": out / f"{stem}.json", "html": out / f"{stem}.html", "pdf": out / f"{stem}.pdf"}
    _write_atomic(paths["json"], json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")
    html_text = render_html(document)
    _write_atomic(paths["html"], html_text)
    if pdf:
        tmp = paths["pdf"].with_name(paths["pdf"].name + ".tmp")
        render_pdf(html_text, tmp)
        os.replace(tmp, paths["pdf"])
    else:
        paths.pop("pdf")
    files = {fmt: {"path": str(p.resolve()), "sha256": sha256_file(p), "bytes": p.stat().st_size}
             for fmt, p in paths.items()}
    earlier = [r for r in issued_reports(lake) if r["kind"] == kind and r["subject"] == subject]
    row = {
        "report_id": report_id, "kind": kind, "subject": subject, "title": document["title"],
        "params_json": json.dumps(params or {}, sort_keys=True, default=str),
        "files": [{"format": fmt, "name": Path(f["path"]).name, **f} for fmt, f in files.items()],
        "cited_runs": cited, "chain_heads": document.get("built_from", {}).get("chain_heads", []),
        "supersedes": earlier[-1]["report_id"] if earlier else None, "trigger": trigger,
        "dagster_run_id": dagster_run_id, "issued_by": getpass.getuser(), "host": socket.gethostname(),
        "issued_at": datetime.now(UTC),
    }
    record = lake.journal.append(REPORTS, report_id, row)
    return IssuedReport(report_id, kind, subject, document["title"], files, record, document)


# -- verification -------------------------------------------------------------------------------

def report_id_in(path: Path) -> str | None:
    """The report id a file carries (HTML/JSON text, PDF metadata), even if other bytes changed."""
    data = path.read_bytes()
    hit = _ID.search(data)
    if hit:
        return hit.group(1).decode()
    if data[:5] == b"%PDF-":
        try:
            from pypdf import PdfReader

            reader = PdfReader(str(path), strict=False)
            meta: Mapping[str, Any] = reader.metadata or {}
            text = " ".join(str(v) for v in meta.values())
            if not _ID.search(text.encode()):
                text += " ".join((p.extract_text() or "") for p in reader.pages[:1])
            hit = _ID.search(text.encode())
            return hit.group(1).decode() if hit else None
        except Exception:  # an altered PDF may not parse at all; the file name is the last resort
            return None
    if path.suffix == ".json":
        try:
            return json.loads(data).get("report_id")
        except (ValueError, AttributeError):
            return None
    return None


@dataclass
class FileVerdict:
    path: str
    sha256: str
    ok: bool
    message: str
    record: dict[str, Any] | None = None
    file_format: str | None = None
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        rec = self.record or {}
        return {"path": self.path, "sha256": self.sha256, "ok": self.ok, "message": self.message,
                "format": self.file_format, "problems": self.problems,
                "record": {k: rec.get(k) for k in ("report_id", "kind", "subject", "title", "issued_at", "issued_by",
                                                   "trigger", "dagster_run_id", "journal_id", "chain_seq",
                                                   "record_hash", "supersedes")} if rec else None,
                "recorded_files": rec.get("files") if rec else None,
                "built_from": {"cited_runs": len(rec.get("cited_runs") or []),
                               "chain_heads": rec.get("chain_heads")} if rec else None}


def _where(rec: dict[str, Any]) -> str:
    return (f"report {rec['report_id']} ({rec['kind']} {rec['subject']}), issued {rec['issued_at']} by "
            f"{rec['issued_by']}; record audit.reports position {rec['chain_seq']} of chain "
            f"{str(rec['journal_id'])[:8]}, record hash {str(rec['record_hash'])[:16]}")


def verify_file(lake: Lakehouse, path: str | Path) -> FileVerdict:
    """Was this file issued as it is? Names the issuing record either way (see the module docstring)."""
    from tracelake.lineage.integrity.chain_check import verify_chain

    p = Path(path)
    digest = sha256_file(p)
    records = issued_reports(lake)
    chain = verify_chain(lake.store, REPORTS.name) if records else None
    chain_problems = chain.problems if chain else []
    for rec in reversed(records):
        for f in rec.get("files") or []:
            if f["sha256"] == digest:
                mine = [q for q in chain_problems if rec["report_id"] in q]
                if mine:
                    return FileVerdict(str(p), digest, False, f"the file matches {_where(rec)}, but that record "
                                       f"fails the audit chain: {mine[0]}", rec, f["format"], mine)
                return FileVerdict(str(p), digest, True, f"unaltered: this is the {f['format']} of {_where(rec)}",
                                   rec, f["format"], [])
    claimed = report_id_in(p)
    by_id = {r["report_id"]: r for r in records}
    rec = by_id.get(claimed) if claimed else None
    how = "the report id it carries"
    if rec is None:
        named = [r for r in records if any(f["name"] == p.name for f in (r.get("files") or []))]
        rec = named[-1] if named else None
        how = "its file name"
    if rec is None:
        return FileVerdict(str(p), digest, False,
                           f"no issued report has a file with this SHA-256 ({digest[:16]}…), and the file names no "
                           "issued report: it was altered beyond recognition or never issued by this lakehouse")
    fmt = next((f["format"] for f in rec["files"] if f["name"] == p.name), None) or \
        {".html": "html", ".pdf": "pdf", ".json": "json"}.get(p.suffix)
    recorded = next((f for f in rec["files"] if f["format"] == fmt), None)
    expected = recorded["sha256"] if recorded else "?"
    return FileVerdict(str(p), digest, False,
                       f"ALTERED after issue: this file (found by {how}) is the {fmt} of {_where(rec)}; it was issued "
                       f"with SHA-256 {expected[:16]}… ({recorded['bytes'] if recorded else '?'} bytes), it now hashes "
                       f"to {digest[:16]}… ({p.stat().st_size} bytes)", rec, fmt,
                       [f"sha256 {digest} != recorded {expected}",
                        *[q for q in chain_problems if rec["report_id"] in q]])
