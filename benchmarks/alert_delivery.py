"""Alert delivery with dead channels (issue: alerts must not be lost).

For each N in --channels, one real monitoring pass (``watch``) opens --alerts alerts whose policy
pages N webhook channels, twice:

  * healthy: N real HTTP servers on 127.0.0.1 that answer 200 - the baseline, measured in the
    same run;
  * dead: the same N channels dead, kinds cycling through --kinds (``silent``: never answers;
    ``drip``: answers one byte per second; ``garbage``: a non-HTTP answer; ``http500``;
    ``refused``: nothing listening);

then one more pass with the dead channels healthy again (the recovery), and a quiet pass after it.
It prints, per N: alerts fired, alerts lost (a page neither delivered nor waiting in the outbox
with a retry time), pages delivered after the recovery, pages delivered twice (must be 0), the
wall time of the pass when healthy and dead, and the dead/healthy ratio.

The dead pass is bounded by one delivery deadline per wave of channels (``--timeout``, the
AlertManager default of 10 s unless given; ``--workers`` channels at a time), not by
alerts x channels x attempts x timeout as with serial delivery.

Run:  .venv/bin/python benchmarks/alert_delivery.py [--alerts 2] [--channels 1,2,4,8]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchlib import save_results

ROOT = Path(__file__).resolve().parents[1]


def _hostile():
    """The misbehaving servers the delivery tests use (one definition of each kind)."""
    spec = importlib.util.spec_from_file_location("tracelake_tests_hostile",
                                                  ROOT / "tests" / "monitors" / "alerts" / "hostile.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@dataclass
class _SLA:
    name: str
    component: str
    policy: object
    description: str = ""
    breached: bool = True

    def evaluate(self, lake, now):
        from tracelake.monitors.alerts.sla import SLAResult

        return SLAResult(self.name, self.component, self.breached, True, 0.5, 0.8, f"{self.name} breached")


def _scenario(hostile, n: int, alerts: int, dead_kinds: list[str] | None, timeout: float, workers: int) -> dict:
    from tracelake.lineage import open_lakehouse
    from tracelake.monitors.alerts.channels import WebhookChannel
    from tracelake.monitors.alerts.manager import AlertManager, AlertPolicy
    from tracelake.monitors.alerts.watch import watch

    servers, channels, ports = [], {}, []
    for i in range(n):
        kind = dead_kinds[i % len(dead_kinds)] if dead_kinds else "ok"
        port = hostile.free_port()
        server = None if kind == "refused" else hostile.HostileServer(kind, port)
        servers.append(server)
        ports.append(port)
        channels[f"hook{i}"] = WebhookChannel(f"http://127.0.0.1:{port}/hook")
    names = tuple(channels)
    slas = [_SLA(f"sla{j}", f"component{j}", AlertPolicy(f"sla{j}", channels=names)) for j in range(alerts)]
    with tempfile.TemporaryDirectory(prefix="tracelake-alert-bench-") as home:
        lake = open_lakehouse(home)

        def manager():
            return AlertManager(lake, channels, timeout_s=timeout, max_workers=workers, retry_base_s=0)

        start = time.perf_counter()
        report = watch(lake, slas=slas, manager=manager())
        seconds = time.perf_counter() - start
        fired = sum(action == "opened" for _, _, action in report.alert_actions)
        states = manager().alerts()
        lost = sum(any(not e.delivered and e.next_attempt_at is None for e in a.outbox)
                   or len(a.outbox) < len(names) for a in states)
        delivered_first = sum(e.delivered for a in states for e in a.outbox)
        out = {"channels": n, "alerts_fired": fired, "alerts_lost": lost, "pages": alerts * n,
               "pages_delivered_in_pass": delivered_first, "seconds": round(seconds, 3)}
        if dead_kinds:
            for i, server in enumerate(servers):     # recovery: every channel healthy at the same URL
                if server is None:
                    servers[i] = hostile.HostileServer("ok", ports[i])
                else:
                    server.mode = "ok"
            start = time.perf_counter()
            watch(lake, slas=slas, manager=manager())
            out["recovery_seconds"] = round(time.perf_counter() - start, 3)
            watch(lake, slas=slas, manager=manager())  # a quiet pass: nothing may be sent again
        events = manager().events()
        delivered = events[events["event"] == "delivered"]
        out["pages_delivered"] = len(delivered.drop_duplicates(["delivery_of", "channel"]))
        out["pages_delivered_twice"] = int(delivered.duplicated(["delivery_of", "channel"]).sum())
        out["received_by_servers"] = sum(len(s.accepted) for s in servers if s is not None)
        out["alerts_undelivered_at_end"] = sum(any(not e.delivered for e in a.outbox) for a in manager().alerts())
    for server in servers:
        if server is not None:
            server.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=2)
    parser.add_argument("--channels", default="1,2,4,8", help="N values, comma-separated")
    parser.add_argument("--kinds", default="silent,drip,garbage,http500,refused")
    parser.add_argument("--timeout", type=float, default=None, help="delivery deadline (default: AlertManager's)")
    parser.add_argument("--workers", type=int, default=None, help="channels at a time (default: AlertManager's)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("results") / "alert_delivery.json"))
    args = parser.parse_args()

    import inspect
    import logging

    from tracelake.monitors.alerts.manager import AlertManager

    logging.getLogger("tracelake.monitors.alerts").setLevel(logging.ERROR)   # failures are expected here

    defaults = inspect.signature(AlertManager).parameters
    timeout = args.timeout if args.timeout is not None else defaults["timeout_s"].default
    workers = args.workers if args.workers is not None else defaults["max_workers"].default
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    hostile = _hostile()
    print(f"{args.alerts} alerts per pass; dead kinds cycle through {', '.join(kinds)}; "
          f"delivery deadline {timeout:g} s, {workers} channels at a time")
    rows = []
    for n in [int(x) for x in args.channels.split(",")]:
        healthy = _scenario(hostile, n, args.alerts, None, timeout, workers)
        dead = _scenario(hostile, n, args.alerts, kinds, timeout, workers)
        ratio = dead["seconds"] / healthy["seconds"] if healthy["seconds"] else float("nan")
        rows.append({"channels": n, "healthy": healthy, "dead": dead, "dead_over_healthy": round(ratio, 1)})
        print(f"N={n:2d} channels  healthy: {healthy['seconds']:6.2f} s, lost {healthy['alerts_lost']}/"
              f"{healthy['alerts_fired']} fired, {healthy['pages_delivered']}/{healthy['pages']} pages delivered | "
              f"dead: {dead['seconds']:6.2f} s ({ratio:.0f}x healthy), lost {dead['alerts_lost']}/"
              f"{dead['alerts_fired']} fired, after recovery ({dead['recovery_seconds']:.2f} s) "
              f"{dead['pages_delivered']}/{dead['pages']} pages delivered, "
              f"{dead['pages_delivered_twice']} twice")
    save_results(args.out, {"alerts": args.alerts, "kinds": kinds, "timeout_s": timeout, "workers": workers,
                            "runs": rows})
    bad = [r for r in rows for s in ("healthy", "dead") if r[s]["alerts_lost"] or r[s]["pages_delivered_twice"]
           or r[s]["pages_delivered"] != r[s]["pages"]]
    if bad:
        print("FAILED: pages lost, undelivered or delivered twice (see above)")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
