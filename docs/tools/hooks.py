"""MkDocs hooks of the gatedrnn site.

A fenced block that the documentation tests do not run is marked in the Markdown source
by an HTML comment just above it (see ``markdown_blocks.NOT_RUN``); on the site the
comment becomes a visible note, so a reader knows which examples are exercised.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from markdown_blocks import NOT_RUN  # noqa: E402


def on_page_markdown(markdown: str, **kwargs) -> str:
    return NOT_RUN.sub(lambda m: f'{m["indent"]}*Not run by the documentation tests: '
                                 f'{m["reason"].strip().rstrip(".")}.*\n', markdown)
