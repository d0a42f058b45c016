"""``tracelake drift TABLE --window … [--reference …] [--slice …] [--report] [--explain]``."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from tracelake.lineage.cli_support import (
    CliError,
    add_json_flag,
    drift_reference,
    drift_window,
    emit,
    format_table,
    int_in,
    lake_for,
    plural,
)
from tracelake.monitors.drift.job import DriftTarget
from tracelake.monitors.drift.profiles import ALL
from tracelake.monitors.drift.query import default_report_dir, drift_of_window, explain_drift, parse_window
from tracelake.monitors.drift.references import ReferenceNotFound

__all__ = ["register", "render_drift"]

_COLUMNS = ["column", "slice", "ref_rows", "cur_rows", "method", "score", "threshold", "drifted", "detail"]
_HEADERS = {"ref_rows": "ref rows", "cur_rows": "rows"}
MULTIVARIATE = "multivariate"


def _row(r) -> dict:
    return {"column": r.column, "slice": "all" if r.slice_key == ALL else f"{r.slice_key}={r.slice_value}",
            "ref_rows": r.ref_rows, "cur_rows": r.cur_rows, "method": r.method, "score": r.score,
            "threshold": r.threshold, "drifted": "-" if r.drifted is None else ("DRIFT" if r.drifted else "ok"),
            "psi": r.psi, "js": r.js, "ks": r.ks, "ks_bound": r.ks_bound, "detail": r.detail,
            "wasserstein_norm": r.wasserstein_norm, "chi2_pvalue": r.chi2_pvalue, "ks_pvalue": r.ks_pvalue}


def _multivariate_line(r) -> str:
    """The domain classifier scores all columns together: said as what it is, not as a column."""
    verdict = "-" if r.drifted is None else ("DRIFT" if r.drifted else "ok")
    method = "domain-classifier AUC" if r.method == "domain_classifier_auc" else r.method
    score = "-" if r.score is None else f"{r.score:.2f}"
    threshold = "" if r.threshold is None else f" (threshold {r.threshold:g})"
    return (f"multivariate (all columns): {method} {score}{threshold} {verdict} "
            f"({r.ref_rows} vs {r.cur_rows} sampled rows)")


def _select(results, slice_text: str | None):
    results = [r for r in results if r.kind != MULTIVARIATE]
    if not slice_text:
        return [r for r in results if r.slice_key == ALL]
    key, _, value = slice_text.partition("=")
    return [r for r in results if r.slice_key == key and (not value or r.slice_value == value)]


def _slice_values(lake, table: str, key: str) -> list[str]:
    """The values of a slice key in the table's stored profiles (one column read, no Spark)."""
    import pyarrow.dataset as ds
    from deltalake import DeltaTable

    from tracelake.lineage.record.delta_meta import latest_version
    from tracelake.monitors.drift.query import PROFILES_TABLE

    path = lake.layout.table(PROFILES_TABLE)
    if latest_version(path) is None:
        return []
    found = DeltaTable(path).to_pyarrow_dataset().to_table(
        columns=["slice_value"], filter=(ds.field("table_name") == table) & (ds.field("slice_key") == key))
    return sorted({str(v) for v in found.column("slice_value").to_pylist() if v is not None})


def _check_slice(lake, target: DriftTarget, text: str | None) -> None:
    """An unknown slice key or value is a typo: say which exist, before anything is computed."""
    if not text:
        return
    key, sep, value = text.partition("=")
    if not target.slices:
        raise CliError(f"{target.table} is not sliced; drop --slice")
    if key not in target.slices:
        raise CliError(f"--slice {text!r}: {target.table} is sliced by {', '.join(target.slices)}")
    if sep:
        values = _slice_values(lake, target.table, key)
        if value not in values:
            shown = ", ".join(values[:15]) + (" ..." if len(values) > 15 else "")
            raise CliError(f"--slice {text!r}: no profiles of {target.table} have {key}={value}; "
                           f"its values: {shown or 'none yet'}")


def _explain_text(view: dict) -> str:
    lines = [f"root cause of drift in {view['table']} over {view['window']} (reference {view['reference']})"]
    if not view["drifted_columns"]:
        lines.append("  no column drifted beyond its threshold")
    for c in view["drifted_columns"]:
        if c["method"] == "domain_classifier_auc":   # not a column: all of them, scored together
            lines.append(f"  drifted: multivariate (all columns): domain-classifier AUC {c['score']:.2f} "
                         f">= {c['threshold']:g}")
            continue
        lines.append(f"  drifted: {c['column']} ({c['method']} {c['score']:.3g} >= {c['threshold']}) {c['detail']}".rstrip())
    for s in view["slices"]:
        lines.append(f"  concentrated in {s['slice']} for {s['column']}: score {s['score']:.3g}, "
                     f"{s['share_of_rows']:.0%} of the rows {s['detail']}".rstrip())
    lines.append(f"  upstream: {plural(view['upstream_runs_inspected'], 'run')} inspected")
    for u in view["upstream_notable"]:
        what = [f"status {u['status']}"] if u["status"] != "succeeded" else []
        what += [f"changed {', '.join(u['changed'])}"] if u["changed"] else []
        what += [f"failed checks {', '.join(u['failed_checks'])}"] if u["failed_checks"] else []
        lines.append(f"  upstream {u['component']} {u['partition'] or ''} (run {u['run_id']}): {'; '.join(what)}")
    return "\n".join(lines)


def render_drift(table: str, window, drift, slice_text: str | None) -> tuple[dict, list[str]]:
    """(JSON payload, human lines) of one window's drift. The multivariate score is not a column:
    it gets its own line, and its own key in the JSON."""
    rows = [_row(r) for r in _select(drift.results, slice_text)]
    multivariate = [r for r in drift.results if r.kind == MULTIVARIATE]
    payload = {"table": table, "window": window.label, "days": list(window.days),
               "reference": drift.reference.as_dict(), "results": rows, "notes": drift.notes,
               "multivariate": [{**_row(r), "column": None, "columns": "all"} for r in multivariate],
               "report_html": drift.report.html_path if drift.report else None,
               "report_json": drift.report.json_path if drift.report else None}
    human = [f"{table} over {window.label} vs {drift.reference.description}",
             format_table(rows, _COLUMNS, {"detail": 40, "slice": 28}, _HEADERS) if rows
             else f"no results for slice {slice_text!r}"]
    human += [_multivariate_line(r) for r in multivariate]
    human += [f"note: {n}" for n in drift.notes]
    if drift.report:
        human.append(f"Evidently report: {drift.report.html_path} (snapshot {drift.report.json_path})")
    else:
        human.append("Evidently report: --report builds one for this window (the daily job's are linked from "
                     "data_drift.report_html)")
    return payload, human


def register(sub: argparse._SubParsersAction, targets: Callable[[], Sequence[DriftTarget]]) -> None:
    """``targets`` returns the declared drift targets (the pipeline's, by default)."""

    def run(args: argparse.Namespace) -> int:
        known = {t.table: t for t in targets()}
        if args.table not in known:
            raise CliError(f"{args.table!r} is not a watched table; watched: {', '.join(sorted(known))}")
        target = known[args.table]
        if args.slice is not None:
            key, sep, value = args.slice.partition("=")
            if not key.strip() or (sep and not value.strip()):
                raise CliError(f"--slice {args.slice!r}: write a slice key or key=value, e.g. pickup_zone=Lakeside")
        lake = lake_for(args)
        try:
            _check_slice(lake, target, args.slice)
            window = parse_window(lake, args.table, args.window)
            drift = drift_of_window(lake, target, window, args.reference,
                                    report_dir=default_report_dir(lake, args.table) if args.report else None,
                                    sample_rows=args.sample_rows)
        except (LookupError, ValueError, ReferenceNotFound) as exc:
            raise CliError(str(exc).strip("'\"")) from None
        payload, human = render_drift(args.table, window, drift, args.slice)
        if args.explain:
            view = explain_drift(lake, drift)
            payload["explain"] = view
            human.append(_explain_text(view))
        emit(args, payload, "\n".join(human))
        return 0

    p = sub.add_parser("drift", help="drift of a watched table over a window, per column (and slice)")
    p.add_argument("table", help="a watched table, e.g. trip_features, tip_predictions, trip_labels")
    p.add_argument("--window", type=drift_window, default="1d",
                   help="YYYY-MM-DD, START..END, START.., 7d, cumulative (default: newest day)")
    p.add_argument("--reference", type=drift_reference, default="lineage",
                   help="lineage (the model's training data, default), previous, or fixed:START..END")
    p.add_argument("--slice", help="a slice key (all its values) or key=value, e.g. pickup_zone=Lakeside")
    p.add_argument("--report", action="store_true", help="also build an Evidently report (HTML + JSON) for the window")
    p.add_argument("--sample-rows", type=int_in(100, 200_000, "rows"), default=5000,
                   help="rows per side for the Evidently report (100..200000, default 5000)")
    p.add_argument("--explain", action="store_true",
                   help="root cause: drifted columns, slices where drift concentrates, upstream runs that changed")
    add_json_flag(p)
    p.set_defaults(func=run)
