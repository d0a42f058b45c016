"""Helpers shared by the compliance report tests."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest


class _Refs(HTMLParser):
    """Every attribute or CSS construct through which a page can load or link something."""

    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self.tags: set[str] = set()
        self._style = False

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self._style = tag == "style"
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "srcset", "action", "poster", "data", "background") and value:
                self.refs.append(value)
            if name == "style" and value:
                self.refs += re.findall(r"url\(([^)]*)\)", value)

    def handle_data(self, data):
        if self._style:
            self.refs += re.findall(r"url\(([^)]*)\)", data) + re.findall(r"@import\s+([^;]+)", data)

    def handle_endtag(self, tag):
        self._style = False


def find_external_references(html_text: str) -> list[str]:
    """What in this HTML points outside the file (in-page anchors ``#...`` are inside it)."""
    parser = _Refs()
    parser.feed(html_text)
    outside = [r for r in parser.refs if not r.strip().strip("'\"").startswith("#")]
    outside += [f"<{t}>" for t in parser.tags & {"script", "link", "img", "iframe", "object", "embed", "image"}]
    return outside


@pytest.fixture
def external_references():
    return find_external_references
