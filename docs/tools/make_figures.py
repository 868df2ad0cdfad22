"""Draw the documentation's figures again by running the pages that draw them.

Every figure on the site is drawn by a code block of the page that shows it (into
``figures/NAME.png``); this script runs the pages' blocks in a temporary directory, as
the tests do, and copies the figures into docs/figures/. With no arguments it runs every
page that writes a figure; give pages to run only those:

    python docs/tools/make_figures.py
    python docs/tools/make_figures.py docs/tutorial/lstm.md
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from markdown_blocks import run_page  # noqa: E402

DOCS = Path(__file__).resolve().parents[1]


def drawing_pages() -> list:
    """The pages whose code names a file in figures/ (as a string: ``"figures/..."``)."""
    return sorted(page for page in DOCS.rglob("*.md")
                  if "tools" not in page.parts and '"figures/' in page.read_text(encoding="utf-8"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", type=Path, help="Markdown pages (default: every page that draws)")
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    pages = [p.resolve() for p in args.pages] or drawing_pages()
    for page in pages:
        with tempfile.TemporaryDirectory() as work:
            started = time.perf_counter()
            run_page(page, Path(work))
            figures = sorted((Path(work) / "figures").glob("*.png"))
            for figure in figures:
                shutil.copyfile(figure, DOCS / "figures" / figure.name)
            names = ", ".join(f.name for f in figures) or "no figures"
            print(f"{page.relative_to(DOCS.parent)}: {names} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
