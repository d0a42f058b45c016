"""A report's JSON -> one self-contained HTML file.

Self-contained means it opens offline and fetches nothing: the CSS is inline, the lineage graph is
inline SVG (laid out by Graphviz), fonts are the reader's own sans-serif, and there are no scripts,
images, stylesheets or links to anything outside the file. URLs and paths the records hold (MLflow
runs, Evidently reports, runbooks) are shown as text to copy, not as links - a report that is
archived for years must not depend on, or call out to, a server. The same HTML is what the PDF is
printed from, so both carry the same sections.
"""

from __future__ import annotations

import html
import json
import re
from datetime import date, datetime
from typing import Any

from tracelake.monitors.compliance.graph_svg import figure_svg

__all__ = ["DIGEST_COLUMNS", "DIGEST_SHOWN", "MAX_TABLE_ROWS", "format_value", "render_html"]

MAX_TABLE_ROWS = 400

# Columns holding SHA-256 digests: the JSON keeps them whole (machine-readable evidence); a page
# shows their first DIGEST_SHOWN hex digits, else the PDF's tables are mostly digits. The full
# value stays in the cell's title (a browser tooltip) - text, not a reference to anything.
DIGEST_COLUMNS = frozenset({"schema_hash", "content_digest", "schema_hashes"})
DIGEST_SHOWN = 16

_CSS = """
@page { size: A4 landscape; margin: 14mm 12mm 16mm 12mm;
        @bottom-left { content: string(report-id); font-size: 7pt; color: #666; }
        @bottom-right { content: "page " counter(page) " of " counter(pages); font-size: 7pt; color: #666; } }
:root { --ink: #1d232b; --muted: #5b6570; --line: #d8dde3; --band: #f4f6f8; --accent: #2b4f8c; }
* { box-sizing: border-box; }
body { font-family: "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; color: var(--ink); font-size: 10pt;
       line-height: 1.4; margin: 0 auto; max-width: 1280px; padding: 16px 24px 40px; }
header { border-bottom: 3px solid var(--accent); margin-bottom: 14px; padding-bottom: 8px; }
header h1 { font-size: 18pt; margin: 0 0 4px; }
.report-id { string-set: report-id content(); font-family: "DejaVu Sans Mono", monospace; font-size: 8pt;
             color: var(--muted); }
h2 { font-size: 13.5pt; color: var(--accent); border-bottom: 1px solid var(--line); margin: 22px 0 6px;
     padding-bottom: 3px; page-break-after: avoid; }
h3 { font-size: 10.5pt; margin: 14px 0 4px; page-break-after: avoid; }
p.proves { background: var(--band); border-left: 4px solid var(--accent); margin: 6px 0 10px; padding: 6px 10px;
           font-size: 9.5pt; }
p.note { color: var(--muted); font-size: 8.5pt; margin: 4px 0; }
table { border-collapse: collapse; width: 100%; margin: 4px 0 10px; font-size: 8pt; }
th, td { border: 1px solid var(--line); padding: 2px 5px; text-align: left; vertical-align: top;
         overflow-wrap: break-word; }
th { background: var(--band); font-weight: 600; }
tr { page-break-inside: avoid; }
table.facts th { width: 22%; }
table.facts td { font-size: 9pt; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.bad { color: #a3212f; font-weight: 600; }
.warn { color: #8a6400; font-weight: 600; }
.good { color: #2f6b3c; }
figure { margin: 6px 0 12px; text-align: center; page-break-inside: avoid; }
figure svg { display: block; margin: 0 auto; max-height: 165mm; }
figcaption { font-size: 8.5pt; color: var(--muted); margin-top: 4px; }
nav ol { columns: 2; font-size: 9pt; margin: 4px 0 8px; }
nav a, nav a:visited { color: var(--accent); text-decoration: none; }
footer { border-top: 1px solid var(--line); margin-top: 24px; padding-top: 6px; font-size: 8pt; color: var(--muted); }
code { font-family: "DejaVu Sans Mono", monospace; font-size: 8pt; }
"""

_BAD = {"failed", "DRIFT", "PROBLEMS", "abandoned", "open", "missing"}
_WARN = {"warned", "acknowledged", "skipped"}


def format_value(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"  # noqa: RUF001 (an en dash: no value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


_BREAK_AFTER = re.compile(r"([/#&?=,;])")


def _breakable(text: str) -> str:
    """Escaped text with break opportunities (``<wbr>``) after the separators of long paths and
    URLs, so a table column is as wide as a path segment, not a whole path. Copying the text copies
    the path unchanged. (Letting the layout break *anywhere* costs WeasyPrint far more.)"""
    if len(text) < 28:
        return html.escape(text)
    return "".join(html.escape(part) + ("<wbr>" if _BREAK_AFTER.fullmatch(part) else "")
                   for part in _BREAK_AFTER.split(text))


def _header(name: str) -> str:
    return html.escape(name).replace("_", "_<wbr>")


def _short_digests(text: str) -> str:
    return ", ".join(part[:DIGEST_SHOWN] + ("…" if len(part) > DIGEST_SHOWN else "") for part in text.split(", "))


def _cell(value: Any, column: str = "") -> str:
    text = format_value(value)
    if column in DIGEST_COLUMNS and value:
        return f'<td title="{html.escape(text)}"><code>{html.escape(_short_digests(text))}</code></td>'
    cls = []
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        cls.append("num")
    if text in _BAD:
        cls.append("bad")
    elif text in _WARN:
        cls.append("warn")
    attr = f' class="{" ".join(cls)}"' if cls else ""
    return f"<td{attr}>{_breakable(text)}</td>"


def _table(t: dict[str, Any]) -> str:
    cols = t["columns"]
    rows = t["rows"]
    out = [f"<h3>{html.escape(t['title'])}</h3>"]
    if not rows:
        out.append('<p class="note">none recorded</p>')
        return "\n".join(out)
    out.append("<table><thead><tr>" + "".join(f"<th>{_header(c)}</th>" for c in cols) + "</tr></thead><tbody>")
    for r in rows[:MAX_TABLE_ROWS]:
        out.append("<tr>" + "".join(_cell(r.get(c), c) for c in cols) + "</tr>")
    out.append("</tbody></table>")
    if len(rows) > MAX_TABLE_ROWS:
        out.append(f'<p class="note">{len(rows) - MAX_TABLE_ROWS} more rows are in the JSON report '
                   f"({len(rows)} in all).</p>")
    if t.get("note"):
        out.append(f'<p class="note">{html.escape(t["note"])}</p>')
    if DIGEST_COLUMNS & set(cols):
        out.append(f'<p class="note">Digests are shown to their first {DIGEST_SHOWN} hex digits; the JSON report '
                   "issued with this file holds them in full, as recorded at write time.</p>")
    return "\n".join(out)


def _facts(facts: list[list[Any]]) -> str:
    if not facts:
        return ""
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th>{_cell(v, 'detail')}</tr>" for k, v in facts)
    return f'<table class="facts"><tbody>{rows}</tbody></table>'


def _section(s: dict[str, Any], number: int) -> str:
    out = [f'<section id="{html.escape(s["id"])}">', f"<h2>{number}. {html.escape(s['title'])}</h2>"]
    if s.get("proves"):
        out.append(f'<p class="proves"><strong>What this proves.</strong> {html.escape(s["proves"])}</p>')
    out.append(_facts(s.get("facts") or []))
    for fig in s.get("figures") or []:
        out.append(f"<figure>{figure_svg(fig)}<figcaption>{html.escape(fig['title'])} "
                   "(laid out by Graphviz dot; red: failed declared tests, amber: warnings)</figcaption></figure>")
    for t in s.get("tables") or []:
        out.append(_table(t))
    for note in s.get("notes") or []:
        out.append(f'<p class="note">{html.escape(note)}</p>')
    out.append("</section>")
    return "\n".join(out)


def render_html(doc: dict[str, Any]) -> str:
    """The whole report as one HTML document (nothing outside it is referenced)."""
    rid = doc.get("report_id") or "not issued"
    title = doc["title"]
    toc = "".join(f'<li><a href="#{html.escape(s["id"])}">{html.escape(s["title"])}</a></li>'
                  for s in doc["sections"])
    sections = "\n".join(_section(s, i + 1) for i, s in enumerate(doc["sections"]))
    heads = doc.get("built_from", {}).get("chain_heads", [])
    head_text = ", ".join(f"{h['table']}#{h['chain_seq']}" for h in heads)
    generated = html.escape(str(doc.get("generated_at")))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="tracelake-report-id" content="{html.escape(rid)}">
<meta name="keywords" content="tracelake-report-id:{html.escape(rid)}">
<meta name="generator" content="tracelake compliance reports">
<title>{html.escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>{html.escape(title)}</h1>
<div class="report-id">tracelake-report-id:{html.escape(rid)} · generated {generated}</div>
{_facts([["lakehouse", doc.get("lakehouse")], *doc.get("summary", [])])}
</header>
<nav><strong>Contents</strong><ol>{toc}</ol></nav>
{sections}
<footer>
<p>Built from the audit records of {html.escape(str(doc.get("lakehouse")))} (chain heads: {html.escape(head_text)}).
Every figure above is read from a record or computed from recorded values; nothing was typed by hand. The JSON
file issued with this report holds the same content, machine-readable.</p>
<p>Issued as report <code>{html.escape(rid)}</code>: its SHA-256 is chained into <code>audit.reports</code>.
Check this file with <code>tracelake report verify FILE</code>.</p>
</footer>
</body>
</html>
"""
