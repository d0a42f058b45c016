"""Tamper detection: every kind of change to the record that `tracelake audit verify` must
catch, tried on a fresh copy of a lakehouse each, with the figure "detected / tried".

The kinds are the ones the tests use (``tests/support/tampering.py``): changed, deleted,
duplicated and reordered audit records (flushed and still in the journal), a whole audit table
removed or emptied, a chain recomputed after a change (caught only by the anchors), a lost
journal, data files rewritten or deleted in old versions, rogue and forged data commits, a commit
removed from a table's log, and a forged anchor. Each copy is anchored first, as a live
lakehouse is after its writes, and gets a few unflushed journal records.

What it does not try, because verification cannot catch it (docs/security.md): an attacker who
holds the anchor key *and* can write the lakehouse, or one who changes the record before it is
first anchored.

Run:  .venv/bin/python benchmarks/tamper_detection.py [--home LAKEHOUSE]
(default: ./lakehouse, the demo's; build one first with `.venv/bin/tracelake demo`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))

from benchlib import save_results  # noqa: E402
from tampering import KINDS, forge_an_anchor  # noqa: E402


def _live_copy(source: str, target: Path) -> str:
    from tracelake.lineage import METRICS, open_lakehouse
    from tracelake.lineage.integrity.anchoring import anchor_current_heads
    from tracelake.lineage.lakehouse import forget_lakehouse
    from tracelake.lineage.record.runid import new_run_id

    shutil.copytree(source, target)
    lake = open_lakehouse(str(target))
    anchor_current_heads(lake)
    for i in range(3):  # records still in the journal, as a live lakehouse has between flushes
        mid = new_run_id()
        lake.journal.append(METRICS, mid, {"metric_id": mid, "component": "tamper_drill", "metric": "drill",
                                           "value": float(i), "computed_at": datetime.now(UTC)})
    forget_lakehouse(str(target))
    return str(target)


def _verify(home: str):
    from tracelake.lineage import open_lakehouse
    from tracelake.lineage.integrity.verify import verify_lakehouse
    from tracelake.lineage.lakehouse import forget_lakehouse

    forget_lakehouse(home)
    return verify_lakehouse(open_lakehouse(home))


def _try(name: str, source: str, work: Path, tamper) -> dict:
    home = _live_copy(source, work / name.replace(" ", "_").replace("/", "_"))
    started = time.perf_counter()
    clean = _verify(home)
    if not clean.ok:
        raise SystemExit(f"the untouched copy does not verify: {clean.problems[:3]}")
    target = tamper(home)
    report = _verify(home)
    # named: the problem says which table changed; a forged anchor is named as the anchor file, a
    # lost journal by the chains whose anchored records went with it
    table = target.split("@")[0]
    named = [p for p in report.problems if table in p or (table == "anchors" and "anchor" in p)
             or (table == "journal" and "is gone" in p)]
    shutil.rmtree(home, ignore_errors=True)
    return {"kind": name, "target": target, "detected": not report.ok, "named": bool(named),
            "first_problem": (named or report.problems or [""])[0][:160], "seconds": time.perf_counter() - started}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", default=os.environ.get("TRACELAKE_HOME", str(ROOT / "lakehouse")))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "tamper_detection.json"))
    args = parser.parse_args()
    if not (Path(args.home) / "audit").is_dir():
        print(f"tamper_detection: {args.home} is not a lakehouse; run `.venv/bin/tracelake demo` first "
              "or pass --home", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="tracelake-tamper-") as tmp:
        work = Path(tmp)
        os.environ["TRACELAKE_ANCHOR_DIR"] = str(work / "anchors")  # never touch the real anchors
        kinds = dict(KINDS)
        kinds["forge an anchor"] = lambda home: forge_an_anchor(home, _anchor_path(home))
        rows = [_try(name, args.home, work, tamper) for name, tamper in sorted(kinds.items())]
    detected = sum(r["detected"] for r in rows)
    named = sum(r["named"] for r in rows)
    print(f"Tamper detection on copies of {args.home}")
    for r in rows:
        verdict = "detected" if r["detected"] else "MISSED"
        print(f"  {r['kind']:<42} {verdict:<9} {r['first_problem']}")
    print(f"  detected {detected}/{len(rows)} kinds, naming the changed table in {named}/{len(rows)} "
          f"(target: {len(rows)}/{len(rows)}: {'met' if detected == len(rows) else 'NOT met'})")
    save_results(args.out, {"home": args.home, "detected": detected, "tried": len(rows), "named": named, "kinds": rows})
    return 0 if detected == len(rows) else 1


def _anchor_path(home: str) -> Path:
    from tracelake.lineage.record.anchors import anchor_store

    return anchor_store(home).path


if __name__ == "__main__":
    raise SystemExit(main())
