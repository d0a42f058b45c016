"""Lineage graphs laid out by Graphviz ``dot`` and embedded as inline SVG.

A report's figure is data (nodes and edges in its JSON); this module turns it into DOT, lets
``dot`` lay it out (ranks, crossing minimisation, edge routing - a real layout engine, not
hand-placed boxes), and returns the ``<svg>`` element with nothing that points outside it: no
XML prolog or DTD reference, no links. ``install.sh`` installs Graphviz (Debian package
``graphviz``); nothing is downloaded when a report is built.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

__all__ = ["ReportToolMissing", "dot_version", "figure_dot", "figure_svg"]

_FILL = {"ok": "#e8f3ea", "warned": "#fff1c2", "failed": "#f7d4d7", "model": "#dbe6f8", "selected": "#e6e0f5"}
_LINE = {"ok": "#4d7a57", "warned": "#a07400", "failed": "#a3212f", "model": "#2b4f8c", "selected": "#4b3a8c"}
_FONT = "DejaVu Sans"


class ReportToolMissing(RuntimeError):
    """A program the reports need is not installed (``install.sh`` installs it)."""


def _quote(text: Any) -> str:
    s = str(text).replace("\\", "\\\\").replace('"', '\\"')
    return '"' + s.replace("\n", "\\n") + '"'


def figure_dot(figure: dict[str, Any]) -> str:
    lines = [
        "digraph lineage {",
        f'  graph [rankdir={figure.get("rankdir", "LR")}, fontname="{_FONT}", fontsize=10, nodesep=0.25, '
        'ranksep=0.45, pad=0.1];',
        f'  node [shape=box, style="rounded,filled", fontname="{_FONT}", fontsize=9, margin="0.12,0.06"];',
        f'  edge [fontname="{_FONT}", fontsize=8, color="#555555", fontcolor="#333333", arrowsize=0.6];',
    ]
    for n in figure["nodes"]:
        state = n.get("state", "ok")
        shape = ", shape=ellipse" if n.get("kind") == "model" else ""
        width = ", penwidth=2" if state in ("failed", "model", "selected") else ""
        lines.append(f'  {_quote(n["id"])} [label={_quote(n["label"])}, fillcolor="{_FILL.get(state, _FILL["ok"])}", '
                     f'color="{_LINE.get(state, _LINE["ok"])}"{shape}{width}];')
    for e in figure["edges"]:
        style = ', style=dashed' if e.get("style") == "model" else ""
        label = f", label={_quote(e['label'])}" if e.get("label") else ""
        lines.append(f'  {_quote(e["from"])} -> {_quote(e["to"])} [{label.lstrip(", ")}{style}];')
    lines.append("}")
    return "\n".join(lines)


def _dot() -> str:
    """The path of Graphviz ``dot``, or the clear message saying how to install it."""
    exe = shutil.which("dot")
    if exe is None:
        raise ReportToolMissing("Graphviz `dot` is not installed, so the lineage graph cannot be laid out; "
                                "run ./install.sh (it installs the Debian package graphviz)")
    return exe


def dot_version() -> str:
    out = subprocess.run([_dot(), "-V"], capture_output=True, text=True, timeout=30)
    return (out.stderr or out.stdout).strip()


# The printable area of a landscape A4 page, in points (what the figure must fit without shrinking much).
_PAGE = (760.0, 460.0)


def _layout(exe: str, figure: dict[str, Any]) -> str:
    done = subprocess.run([exe, "-Tsvg"], input=figure_dot(figure).encode(), capture_output=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"graphviz dot failed: {done.stderr.decode(errors='replace').strip()[:300]}")
    return done.stdout.decode()


def _scale(svg: str) -> float:
    size = re.search(r'<svg[^>]*\swidth="([\d.]+)pt"[^>]*\sheight="([\d.]+)pt"', svg)
    if not size:
        return 1.0
    w, h = float(size.group(1)), float(size.group(2))
    return min(1.0, _PAGE[0] / max(w, 1.0), _PAGE[1] / max(h, 1.0))


def figure_svg(figure: dict[str, Any]) -> str:
    """The figure as an ``<svg>`` element laid out by ``dot`` (scales to the page width).

    Without a ``rankdir`` the graph is laid out left-to-right and top-to-bottom, and the layout
    that needs the least shrinking to fit a page is kept - labels stay readable in the PDF."""
    exe = _dot()
    if figure.get("rankdir"):
        svg = _layout(exe, figure)
    else:
        candidates = [_layout(exe, {**figure, "rankdir": d}) for d in ("LR", "TB")]
        svg = max(candidates, key=_scale)
    svg = svg[svg.index("<svg"):]                        # drop the XML prolog, DTD reference and comments
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns:xlink="[^"]*"', "", svg, count=1)
    head, rest = svg.split(">", 1)
    width = re.search(r'width="([\d.]+)pt"', head)
    head = re.sub(r'\s(width|height)="[^"]*"', "", head)
    max_width = f"{float(width.group(1)):.0f}pt" if width else "100%"
    head += f' class="lineage" style="width:100%;max-width:{max_width};height:auto" role="img"'
    return head + ">" + rest.strip()
