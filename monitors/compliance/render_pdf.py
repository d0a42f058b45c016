"""The report's HTML -> PDF with WeasyPrint, so the PDF has exactly the HTML's sections.

WeasyPrint is a Python library (installed from PyPI by ``install.sh``) that lays out HTML and CSS
with Pango; on Debian it needs the Pango libraries (``libpango-1.0-0``, ``libpangoft2-1.0-0``)
and a font (``fonts-dejavu-core``), which ``install.sh`` installs. Nothing is fetched: every URL
WeasyPrint might ask for is refused, so a report that referenced anything outside itself would
fail here rather than silently differ between machines.
"""

from __future__ import annotations

from pathlib import Path

from tracelake.monitors.compliance.graph_svg import ReportToolMissing

__all__ = ["render_pdf"]


def render_pdf(html_text: str, target: str | Path) -> None:
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # OSError: the Pango libraries are missing
        raise ReportToolMissing(f"cannot render PDF reports: {str(exc).splitlines()[0][:200]}; run ./install.sh "
                                "(WeasyPrint and the Debian packages libpango-1.0-0 libpangoft2-1.0-0)") from None
    import logging

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    # No protocol is allowed and any fetch is fatal: the report must not reference anything outside itself.
    from weasyprint.urls import FatalURLFetchingError

    refuse = weasyprint.URLFetcher(allowed_protocols=(), fail_on_errors=True)
    try:
        weasyprint.HTML(string=html_text, base_url=None, url_fetcher=refuse).write_pdf(str(target))
    except FatalURLFetchingError as exc:  # a BaseException in WeasyPrint: turn it into a plain error
        raise ValueError(f"the report references something outside itself ({exc}); compliance reports must be "
                         "self-contained") from None
