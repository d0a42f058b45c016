"""A small read-only web server for what the Dagster UI links to: the runbooks and the reports.

Alerts and declared tests link to runbook sections; drift and compliance reports are HTML files
in the lakehouse. The Dagster UI can only link to http URLs (a browser refuses ``file://`` links
from an http page), so ``tracelake ui`` serves them on 127.0.0.1 next to it - default port 3030,
which the defaults of ``TRACELAKE_RUNBOOK_BASE`` (``/runbooks``) and ``TRACELAKE_REPORTS_BASE``
(``/reports``, the compliance report links in ``assets/compliance.py``) point at; ``tracelake ui
--docs-port`` sets both for the Dagster it starts:

    /runbooks            docs/runbooks.md as HTML, with an anchor per section
    /docs/<page>         any page of docs/
    /reports/<path>      files under <home>/reports (Evidently and compliance reports)

It serves files only from those two folders (paths are resolved and checked), answers GET and
HEAD only, and binds to localhost unless told otherwise.
"""

from __future__ import annotations

import html
import mimetypes
import re
import threading
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

from tracelake.lineage.settings import repo_root

__all__ = ["DocsServer", "render_markdown", "slug"]

_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title><style>
body{{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;line-height:1.5;color:#1b1f24}}
code,pre{{background:#f3f4f6;border-radius:4px}} pre{{padding:.8em;overflow:auto}} code{{padding:.1em .3em}}
table{{border-collapse:collapse}} td,th{{border:1px solid #d0d7de;padding:.3em .6em}} :target{{background:#fff8c5}}
</style></head><body>{body}</body></html>"""


def slug(text: str) -> str:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"\s+", "-", re.sub(r"[^\w\s-]", "", text.strip().lower()))


def render_markdown(text: str, title: str) -> str:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark").enable("table")
    tokens = md.parse(text)
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and i + 1 < len(tokens):
            token.attrSet("id", slug(tokens[i + 1].content))
    return _PAGE.format(title=html.escape(title), body=md.renderer.render(tokens, md.options, {}))


class _Handler(BaseHTTPRequestHandler):
    def __init__(self, *args, docs: Path, reports: Path, **kwargs):
        self.docs, self.reports = docs, reports
        super().__init__(*args, **kwargs)

    def log_message(self, format: str, *args) -> None:  # quiet: the Dagster UI's console is enough
        return

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def do_GET(self) -> None:
        self._answer(head=False)

    def _answer(self, head: bool) -> None:
        path = unquote(urlparse(self.path).path)
        if path in ("/", "/runbooks", "/runbooks/"):
            return self._page(self.docs / "runbooks.md", head)
        if path.startswith("/docs/"):
            name = path[len("/docs/"):]
            return self._page(self.docs / (name if name.endswith(".md") else f"{name}.md"), head)
        if path.startswith("/reports/"):
            return self._file(self.reports, path[len("/reports/"):], head)
        self._send(404, b"not found", "text/plain", head)

    def _inside(self, root: Path, target: Path) -> bool:
        try:
            target.resolve().relative_to(root.resolve())
        except ValueError:
            return False
        return target.is_file()

    def _page(self, target: Path, head: bool) -> None:
        if not self._inside(self.docs, target):
            return self._send(404, b"no such page", "text/plain", head)
        body = render_markdown(target.read_text(), target.stem).encode()
        self._send(200, body, "text/html; charset=utf-8", head)

    def _file(self, root: Path, relative: str, head: bool) -> None:
        target = root / relative
        if not self._inside(root, target):
            return self._send(404, b"no such report", "text/plain", head)
        kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        self._send(200, target.read_bytes(), kind, head)

    def _send(self, status: int, body: bytes, kind: str, head: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


class DocsServer:
    """``with DocsServer(reports_dir) as server: ...`` - serves in a background thread."""

    def __init__(self, reports: Path, host: str = "127.0.0.1", port: int = 3030, docs: Path | None = None):
        handler = partial(_Handler, docs=docs or repo_root() / "docs", reports=reports)
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="tracelake-docs", daemon=True)

    def __enter__(self) -> DocsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
