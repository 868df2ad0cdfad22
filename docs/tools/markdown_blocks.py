"""The fenced code blocks of a Markdown page, and running them (tests/test_docs.py, and
docs/tools/make_figures.py, which runs the pages that draw the site's figures).

Rules the pages follow:

* every ```` ```python ```` block runs; the blocks of one page share one namespace, in
  order, in one working directory (a fresh temporary one in the tests) that has an
  empty ``figures/`` folder: a page draws its figures as ``figures/NAME.png``, and
  make_figures.py copies them to docs/figures/;
* every ```` ```bash ```` block runs as one bash script (``set -euo pipefail``) in that
  directory, where ``gatedrnn`` and ``python`` are the current interpreter's;
* a block that must not run (it installs packages, or trains for minutes) has, on the
  line just above its fence, ``<!-- not run by the docs tests: REASON -->``; the site
  shows the reason (docs/tools/hooks.py);
* blocks of any other language (``text``, ``yaml``, none) are not code and never run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
NOT_RUN = re.compile(r"^(?P<indent>[ \t]*)<!--\s*not run by the docs tests:(?P<reason>.*?)-->[ \t]*$",
                     re.MULTILINE)
PYTHON = ("python", "py")
SHELL = ("bash", "sh")


@dataclass
class Block:
    path: Path
    line: int            # 1-based line of the opening fence
    language: str
    code: str
    not_run: Optional[str]  # the reason, for a block marked not run

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.not_run is None and self.language in PYTHON + SHELL


def blocks(path: Path) -> List[Block]:
    """Every fenced block of the Markdown file ``path``, in order."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    found = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        language = opening["info"].split()[0].lower() if opening["info"].strip() else ""
        language = language.lstrip("{.").rstrip("}")
        end = i + 1
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        if end == len(lines):
            raise ValueError(f"{path}:{i + 1}: code fence {fence!r} is never closed")
        body = [line[len(indent):] if line.startswith(indent) else line.lstrip() for line in lines[i + 1:end]]
        previous = lines[i - 1] if i > 0 else ""
        marker = NOT_RUN.match(previous)
        reason = marker["reason"].strip() if marker else None
        if marker and not reason:
            raise ValueError(f"{path}:{i}: a not-run marker must give its reason")
        found.append(Block(Path(path), i + 1, language, "\n".join(body) + "\n", reason))
        i = end + 1
    return found


SHELL_PRELUDE = textwrap.dedent("""\
    set -euo pipefail
    gatedrnn() { "$DOCS_PYTHON" -m gatedrnn "$@"; }
    python() { "$DOCS_PYTHON" "$@"; }
    export -f gatedrnn python
    """)


def run_python(block: Block, namespace: Dict) -> None:
    """Execute ``block`` in ``namespace`` (in the current working directory)."""
    code = compile("\n" * block.line + block.code, str(block.path), "exec")
    exec(code, namespace)


def run_shell(block: Block, cwd: Path, timeout: float = 120.0) -> str:
    """Run ``block`` with bash in ``cwd``; return its output; raise on failure."""
    env = dict(os.environ, DOCS_PYTHON=sys.executable)
    result = subprocess.run(["bash", "-c", SHELL_PRELUDE + block.code], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{block.where}: shell block failed with status {result.returncode}\n"
                             f"--- code\n{block.code}--- stdout\n{result.stdout}--- stderr\n{result.stderr}")
    return result.stdout + result.stderr


def run_page(path: Path, cwd: Path) -> List[Block]:
    """Run every runnable block of the page ``path`` in order in ``cwd``; return them."""
    namespace: Dict = {"__name__": f"docs_page_{Path(path).stem}"}
    (Path(cwd) / "figures").mkdir(exist_ok=True)
    ran = []
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        for block in blocks(path):
            if not block.runs:
                continue
            if block.language in PYTHON:
                run_python(block, namespace)
            else:
                run_shell(block, cwd)
            ran.append(block)
    finally:
        os.chdir(previous)
    return ran
