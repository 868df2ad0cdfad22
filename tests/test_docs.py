"""The documentation cannot rot: every code block of the README and of docs/ runs, and the
MkDocs site builds with ``--strict`` (broken links, anchors, images and API
cross-references fail it; so does math that KaTeX cannot typeset).

The rules the pages follow are in ``docs/tools/markdown_blocks.py``: ``python`` blocks
run in order in one namespace per page, ``bash`` blocks run with ``gatedrnn`` and
``python`` being this interpreter, and a block that must not run says why in a
``<!-- not run by the docs tests: ... -->`` line above it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "tools"))

import markdown_blocks  # noqa: E402

PAGES = [ROOT / "README.md", *sorted(p for p in DOCS.rglob("*.md") if "tools" not in p.parts)]
# fenced blocks that are not code to run: diagrams, file contents, output
NOT_CODE = ("", "text", "yaml", "json", "toml", "csv", "html", "cpp", "c++")


def _id(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.fixture
def page_sandbox(monkeypatch):
    """The pages seed torch as they like: the tests after them see the RNG unchanged.
    Their examples are tiny, so they run on one thread (the fastest for such sizes, and
    safe from the kernels' spinning threads when the machine is shared), shell blocks too."""
    state, threads = torch.random.get_rng_state(), torch.get_num_threads()
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.random.set_rng_state(state)


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_code_blocks_run(page, tmp_path, page_sandbox):
    """Every python and bash block of the page runs, in order, in a fresh directory; the
    figures it draws are committed under docs/figures/ and shown on the page."""
    blocks = markdown_blocks.blocks(page)
    for block in blocks:
        assert block.language in markdown_blocks.PYTHON + markdown_blocks.SHELL + NOT_CODE, (
            f"{block.where}: a ```{block.language} block is neither run nor known not to be "
            f"code; use python or bash, or add the language to NOT_CODE")
    markdown_blocks.run_page(page, tmp_path)
    text = page.read_text(encoding="utf-8")
    for figure in sorted((tmp_path / "figures").glob("*.png")):
        assert (DOCS / "figures" / figure.name).is_file(), (
            f"{_id(page)} draws figures/{figure.name}, which is not committed: run "
            f"python docs/tools/make_figures.py {_id(page)}")
        assert f"figures/{figure.name}" in text, f"{_id(page)} draws {figure.name} but does not show it"


def test_api_reference_covers_every_module():
    """Every public module of gatedrnn is on an API reference page: named in a ``:::``
    directive, or inside a package that is (its page shows its submodules)."""
    import re

    directives = set()
    for page in (DOCS / "reference").glob("*.md"):
        directives.update(re.findall(r"^::: (gatedrnn[\w.]*)\s*$", page.read_text(encoding="utf-8"), re.MULTILINE))
    directives.discard("gatedrnn")  # the overview shows the package's docstring only
    package = ROOT / "gatedrnn"
    modules = []
    for path in sorted(package.rglob("*.py")):
        parts = ("gatedrnn", *path.relative_to(package).with_suffix("").parts)
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        if parts[-1] != "__main__" and not any(p.startswith("_") for p in parts):
            modules.append(".".join(parts))
    missing = [m for m in modules if m != "gatedrnn" and not any(m == d or m.startswith(d + ".") for d in directives)]
    assert not missing, f"modules on no page of docs/reference/: {missing}"


def test_docstring_restructuredtext_becomes_markdown():
    """The griffe extension's rewrites, on a docstring with each construct it handles."""
    import griffe_rst

    text = "\n".join([
        "Step.", "", ".. math::", "    a &= b \\\\", "    c &= d", "",
        "====  =====", "name  shape", "====  =====", "w     (G*H, P|H)", "      stacked", "====  =====", "",
        "Returns (L*D, B, H); ``x*y`` stays.", "", "Example::", "", "    >>> f(1)", "    2",
    ])
    markdown = griffe_rst._escape_intraword_stars(griffe_rst._blocks(text))
    assert "$$\n\\begin{aligned}\na &= b \\\\\nc &= d\n\\end{aligned}\n$$" in markdown
    assert "| name | shape |\n|---|---|\n| w | (G\\*H, P\\|H) stacked |" in markdown
    assert "(L\\*D, B, H)" in markdown and "``x*y``" in markdown
    assert "Examples:\n    >>> f(1)\n    2" in markdown

    args = "Args:\n    a, b (x | y),\n    c: as torch.nn. d: (H,).\n    e: Default: the sum."
    known = lambda kind, name: name in "abcde"  # noqa: E731
    assert griffe_rst._split_entries(args, known).splitlines() == [
        "Args:", "    a: as torch.nn.", "    b: as torch.nn. (x | y)", "    c: as torch.nn.",
        "    d: (H,).", "    e: Default: the sum."]


def test_readme_links_resolve():
    """The README is not part of the site, so mkdocs does not check its links: every
    relative link must name a file of the repository (and a page of the site)."""
    import re

    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", (ROOT / "README.md").read_text(encoding="utf-8"))
    relative = [link for link in links if "://" not in link]
    assert relative, "the README should link into the documentation"
    missing = [link for link in relative if not (ROOT / link).is_file()]
    assert not missing, f"README links to missing files: {missing}"


def test_blocks_are_found_and_marked(tmp_path):
    """The parser sees a page's blocks as the renderer does: languages, indented fences,
    the not-run marker and its reason; a marker without a reason is an error."""
    page = tmp_path / "page.md"
    page.write_text(
        "# t\n\n```python\nx = 1\n```\n\n- item\n\n    ```bash\n    echo $x\n    ```\n\n"
        "<!-- not run by the docs tests: trains for an hour -->\n```bash\nsleep 3600\n```\n\n"
        "```text\nnot code\n```\n", encoding="utf-8")
    found = markdown_blocks.blocks(page)
    assert [(b.language, b.runs, b.not_run) for b in found] == [
        ("python", True, None), ("bash", True, None), ("bash", False, "trains for an hour"),
        ("text", False, None)]
    assert found[1].code == "echo $x\n" and found[1].line == 9
    page.write_text("<!-- not run by the docs tests: -->\n```bash\nsleep 1\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="reason"):
        markdown_blocks.blocks(page)


def test_a_failing_block_fails(tmp_path):
    """A block that raises, or a shell command that fails, fails the page."""
    page = tmp_path / "page.md"
    page.write_text("```python\nvalue = 41\n```\n\n```python\nassert value == 42\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError):
        markdown_blocks.run_page(page, tmp_path)
    page.write_text("```bash\necho fine\nfalse\necho never\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="shell block failed"):
        markdown_blocks.run_page(page, tmp_path)


def _mkdocs(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(config), "--site-dir", str(site)],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)


needs_mkdocs = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("mkdocs", "material", "mkdocstrings_handlers.python")),
    reason="mkdocs, mkdocs-material or mkdocstrings-python is not installed "
           "(pip install -e '.[docs]'): the documentation site is not built")


@needs_mkdocs
def test_site_builds_strict(tmp_path):
    """``mkdocs build --strict``: every page, link, anchor, image and API cross-reference
    resolves; the API reference is generated; every formula is valid for KaTeX."""
    site = tmp_path / "site"
    result = _mkdocs(ROOT / "mkdocs.yml", site)
    assert result.returncode == 0, result.stdout + result.stderr
    lstm = (site / "reference" / "layers" / "index.html").read_text(encoding="utf-8")
    assert 'id="gatedrnn.layers.LSTM"' in lstm and "forget\\_bias" in lstm
    assert (site / "assets" / "katex" / "katex.min.js").is_file()
    for page in site.rglob("*.html"):  # offline: no page loads anything from elsewhere
        html = page.read_text(encoding="utf-8")
        assert "fonts.googleapis" not in html and "cdn.jsdelivr" not in html, page
    _check_math(site)


def _check_math(site: Path) -> None:
    """Typeset every formula of the built site with the bundled KaTeX (throwOnError), when
    Node.js is here to run it."""
    import html as html_lib
    import re

    node = shutil.which("node")
    if node is None:
        return
    pattern = re.compile(r'<(?:span|div) class="arithmatex">(.*?)</(?:span|div)>', re.DOTALL)
    formulas = []
    for page in sorted(site.rglob("*.html")):
        for match in pattern.finditer(page.read_text(encoding="utf-8")):
            tex = html_lib.unescape(match.group(1)).strip()
            display = tex.startswith("\\[")
            formulas.append({"page": str(page.relative_to(site)), "tex": tex[2:-2], "display": display})
    assert len(formulas) > 50, "the API reference and the pages should hold many formulas"
    script = ("const katex = require(process.argv[1]); const bad = [];"
              "for (const f of JSON.parse(require('fs').readFileSync(0, 'utf8'))) {"
              " try { katex.renderToString(f.tex, {displayMode: f.display, throwOnError: true}); }"
              " catch (e) { bad.push(f.page + ': ' + f.tex + ' -- ' + e.message); } }"
              "console.log(JSON.stringify(bad));")
    result = subprocess.run([node, "-e", script, str(DOCS / "assets" / "katex" / "katex.min.js")],
                            input=json.dumps(formulas), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    bad = json.loads(result.stdout)
    assert not bad, "KaTeX cannot typeset:\n" + "\n".join(bad)


@needs_mkdocs
def test_strict_build_fails_on_broken_links_and_references(tmp_path):
    """The site's own settings turn a broken link, anchor or API reference into a failure."""
    import yaml  # installed with mkdocs

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    docs = tmp_path / "docs"
    docs.mkdir()
    config.update(docs_dir=str(docs), nav=["index.md"],
                  hooks=[str(DOCS / "tools" / "hooks.py")], extra_javascript=[], extra_css=[])
    handler = config["plugins"][1]["mkdocstrings"]["handlers"]["python"]
    handler["paths"] = [str(ROOT)]
    handler["options"]["extensions"] = [str(DOCS / "tools" / "griffe_rst.py") + ":RestDocstrings"]
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (docs / "index.md").write_text(
        "# Page\n\n[missing](missing.md), [here](#no-such-heading) and "
        "[LSTM][gatedrnn.layers.NoSuchLayer]\n", encoding="utf-8")
    result = _mkdocs(tmp_path / "mkdocs.yml", tmp_path / "site")
    log = result.stdout + result.stderr
    assert result.returncode != 0 and "in strict mode" in log, log
    assert "'missing.md', but the target" in log, log
    assert "'#no-such-heading', but there is no such anchor" in log, log
    assert "Could not find cross-reference target 'gatedrnn.layers.NoSuchLayer'" in log, log
