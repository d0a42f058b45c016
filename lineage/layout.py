"""Where everything lives under the lakehouse root.

    <home>/tables/<asset>        one Delta table per data asset (written by Spark)
    <home>/audit/<table>         audit and monitoring tables (component_runs, check_results, ...)
    <home>/mlflow/               MLflow SQLite store and artifacts (embedded default)
    <home>/reports/              HTML/JSON reports (drift, compliance)
    <home>/_journal/             the durable audit journal (local disk; or TRACELAKE_JOURNAL_URL: PostgreSQL)
    <home>/_demo/                the demo's state (which simulated days ran)

Keeping the layout in one module means a query written today still finds a table written
years ago: nobody else builds these paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tracelake.lineage.settings import Settings, is_local_uri, to_local_path

__all__ = ["PARTITION_COLUMN", "RESERVED_COLUMNS", "RUN_ID_COLUMN", "Layout", "validate_table_name"]

RUN_ID_COLUMN = "_tl_run_id"
PARTITION_COLUMN = "_tl_partition"
RESERVED_COLUMNS = (RUN_ID_COLUMN, PARTITION_COLUMN)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def validate_table_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise ValueError(
            f"invalid table name {name!r}: use letters, digits and underscores, starting with a letter"
        )
    return name


@dataclass(frozen=True)
class Layout:
    home: str

    @classmethod
    def from_settings(cls, settings: Settings) -> Layout:
        return cls(settings.home)

    def _join(self, *parts: str) -> str:
        return "/".join([self.home.rstrip("/"), *parts])

    def table(self, name: str) -> str:
        return self._join("tables", validate_table_name(name))

    def audit(self, name: str) -> str:
        return self._join("audit", validate_table_name(name))

    def resolve(self, table: str | None, recorded: str | None) -> str | None:
        """Where a recorded table lives *now*.

        Records keep the path a table had when it was written (a fact of that day). Tables of
        this lakehouse are found again through the layout, so a lakehouse that was moved,
        copied or restored under another root still answers every query; anything outside
        ``tables/`` (an external dataset) stays at its recorded path.
        """
        if table is None:
            return recorded
        if recorded is None or recorded.rstrip("/").endswith(f"/tables/{table}"):
            return self.table(table)
        return recorded

    @property
    def tables_root(self) -> str:
        return self._join("tables")

    @property
    def audit_root(self) -> str:
        return self._join("audit")

    @property
    def reports_root(self) -> str:
        return self._join("reports")

    @property
    def mlflow_root(self) -> str:
        return self._join("mlflow")

    @property
    def is_local(self) -> bool:
        return is_local_uri(self.home)

    def delta_tables(self, root: str) -> list[str]:
        """Names of the Delta tables directly under ``root``, a folder or an object-store prefix
        (there: one listing of the prefix, one of each table's ``_delta_log``)."""
        if is_local_uri(root):
            base = to_local_path(root)
            if not base.is_dir():
                return []
            return sorted(p.name for p in base.iterdir() if (p / "_delta_log").is_dir())
        from pyarrow import fs as pafs

        from tracelake.lineage.settings import arrow_filesystem

        filesystem, prefix = arrow_filesystem(root)
        found = []
        for info in filesystem.get_file_info(pafs.FileSelector(prefix, allow_not_found=True)):
            if info.type != pafs.FileType.Directory:
                continue
            log = filesystem.get_file_info(pafs.FileSelector(f"{info.path}/_delta_log", allow_not_found=True))
            if any(i.base_name.endswith(".json") or ".checkpoint" in i.base_name for i in log):
                found.append(info.base_name)
        return sorted(found)

    def local_reports_root(self) -> Path:
        """Where reports asked for on the command line are written, to be opened at once: the
        lakehouse's reports folder when it is local, else ``~/.tracelake`` (a browser cannot open
        an object store)."""
        return self.local_path(self.reports_root) if self.is_local else Path.home() / ".tracelake"

    def local_path(self, uri: str):
        """Filesystem path of a URI under a local lakehouse (raises for object stores)."""
        if not is_local_uri(uri):
            raise ValueError(f"{uri} is not on the local filesystem")
        return to_local_path(uri)
