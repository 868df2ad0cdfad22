"""Griffe extension: the reStructuredText of gatedrnn's docstrings, as Markdown.

The docstrings are Google style (``Args:``, ``Returns:``, ``Raises:``) with a few
reStructuredText constructs that Markdown does not know; this extension rewrites them
once the package is loaded, before mkdocstrings renders the API reference:

* ``.. math::`` blocks become ``$$ ... $$`` display math (``\\begin{aligned}`` around
  lines that align on ``&``), ``:math:`x``` becomes ``$x$`` (KaTeX renders both);
* ``:func:`name```, ``:class:``, ``:meth:``, ``:attr:``, ``:mod:``, ``:data:`` become
  cross-references when ``name`` is a public object of gatedrnn, else inline code; a
  ``gatedrnn.*`` name that does not exist is logged as a warning, so that
  ``mkdocs build --strict`` fails on it;
* a ``*`` inside a word (``L*D``, a product in a shape) is escaped, not emphasis;
* reStructuredText simple tables (``=====  =====`` borders) become Markdown tables;
* ``Example::`` opens a Google ``Examples:`` section (its ``>>>`` lines are shown as
  code), and any other paragraph ending in ``::`` is followed by a fenced code block;
* ``Args:``, ``Attributes:`` and ``Raises:`` entries that document several names at once
  (``a, b, c: as torch.nn``, or ``a: ... b: ...`` on one line) are split into one entry
  per name, so the tables list every name;
* an attribute documented by ``#:`` comments above it (Sphinx's convention) gets them as
  its docstring.
"""

from __future__ import annotations

import logging
import re
import textwrap
from typing import List, Optional

import griffe

LOG = logging.getLogger("mkdocs.plugins.gatedrnn.griffe_rst")

PACKAGE = "gatedrnn"
ROLE = re.compile(r":(?P<role>func|class|meth|attr|mod|data|obj|exc):`(?P<target>[^`]+)`")
INLINE_MATH = re.compile(r":math:`(?P<tex>[^`]+)`")
LITERAL_INTRO = re.compile(r"^(?P<indent>\s*)(?P<text>.*?)(?P<space>\s?)::\s*$")
SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Returns|Raises|Attributes|Examples?|Yields|Note|Notes|Warning)s?:\s*$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _take_block(lines: List[str], start: int, base: int) -> int:
    """Index just past the indented block that starts at ``lines[start]`` (lines indented
    more than ``base``, blank lines inside it included)."""
    end = start
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > base):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return end


def _display_math(tex_lines: List[str], indent: str) -> List[str]:
    tex = textwrap.dedent("\n".join(tex_lines)).strip("\n")
    if "&" in tex:
        tex = "\\begin{aligned}\n" + tex + "\n\\end{aligned}"
    elif "\\\\" in tex:
        tex = "\\begin{gathered}\n" + tex + "\n\\end{gathered}"
    return ["", indent + "$$"] + [indent + line for line in tex.splitlines()] + [indent + "$$", ""]


TABLE_BORDER = re.compile(r"^\s*={2,}(\s+={2,})+\s*$")


def _simple_table(lines: List[str], start: int):
    """A reStructuredText simple table (``===  ===`` borders) starting at ``lines[start]``
    as a Markdown table: (index past it, its lines). Rows whose first cell is empty
    continue the row above; without a header border the table gets an empty header."""
    border = lines[start]
    indent = _indent(border)
    columns = [m.start() for m in re.finditer(r"=+", border)]
    rows: List[List[str]] = []
    header: Optional[List[List[str]]] = None
    i = start + 1
    while i < len(lines):
        line = lines[i]
        if TABLE_BORDER.match(line):
            i += 1
            if i < len(lines) and lines[i].strip() and header is None and not TABLE_BORDER.match(lines[i]):
                header, rows = rows, []  # a header separator: the rows so far are the header
                continue
            break
        if line.strip():
            cells = [line[a:b].strip() for a, b in zip(columns, columns[1:] + [len(line)])]
            if rows and not cells[0]:
                rows[-1] = [f"{old} {new}".strip() for old, new in zip(rows[-1], cells)]
            else:
                rows.append(cells)
        i += 1
    head = [" ".join(cells) for cells in zip(*header)] if header else [""] * len(columns)
    prefix = " " * indent

    def row(cells):
        return prefix + "| " + " | ".join(_escape_pipes(c) for c in cells) + " |"

    table = ["", row(head), prefix + "|" + "---|" * len(columns)] + [row(r) for r in rows] + [""]
    return i, table


def _escape_pipes(cell: str) -> str:
    """``|`` outside code spans separates Markdown table cells: escape it."""
    parts = re.split(r"(``.+?``|`[^`]+`)", cell)
    return "".join(p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(parts))


def _blocks(text: str) -> str:
    """Rewrite ``.. math::`` directives and ``::`` literal blocks."""
    lines = text.splitlines()
    out: List[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        base = _indent(line)
        stripped = line.strip()
        if stripped.startswith(".. math::"):
            first = stripped[len(".. math::"):].strip()
            end = _take_block(lines, i + 1, base)
            tex = ([first] if first else []) + lines[i + 1:end]
            out += _display_math(tex, " " * base)
            i = end
            continue
        if TABLE_BORDER.match(line):
            end, table = _simple_table(lines, i)
            out += table
            i = end
            continue
        match = LITERAL_INTRO.match(line)
        if match and not stripped.startswith(".."):
            start = i + 1
            while start < len(lines) and not lines[start].strip():
                start += 1
            end = _take_block(lines, start, base)
            if start < len(lines) and end > start:
                body = textwrap.dedent("\n".join(lines[start:end])).splitlines()
                prefix = " " * base
                if match["text"] in ("Example", "Examples"):
                    # a Google "Examples:" section: griffe shows its >>> lines as code
                    out.append(prefix + "Examples:")
                    out += [prefix + "    " + b if b.strip() else "" for b in body]
                else:
                    # "as::" -> "as:", "Paragraph ::" -> "Paragraph", then the code
                    intro = match["text"] + ("" if match["space"] else ":")
                    language = "pycon" if body[0].lstrip().startswith(">>>") else "text"
                    out += [prefix + intro, "", prefix + "```" + language]
                    out += [prefix + b if b.strip() else "" for b in body]
                    out += [prefix + "```"]
                i = end
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


ENTRY_SECTIONS = {"Args": "parameters", "Arguments": "parameters", "Parameters": "parameters",
                  "Attributes": "attributes", "Raises": "exceptions"}


# code spans, fenced blocks, display and inline math: left as they are
PROTECTED = re.compile(r"(```.*?```|``.+?``|`[^`\n]+`|\$\$.*?\$\$|:math:`[^`]+`)", re.DOTALL)


def _escape_intraword_stars(text: str) -> str:
    """``L*D`` and ``D*H`` in shapes are products, not Markdown emphasis: escape a ``*``
    between two word characters, outside code and math."""
    parts = PROTECTED.split(text)
    for index in range(0, len(parts), 2):  # the even parts are outside code and math
        parts[index] = re.sub(r"(?<=[\w)])\*(?=[\w(])", r"\\*", parts[index])
    return "".join(parts)


def _split_entries(text: str, known) -> str:
    """Google sections whose entries run several names together, one entry per name.

    ``a, b (x | y), c: as torch.nn`` (the names may wrap onto the next line at the same
    indentation) and ``xw: (B, 4H). state: (h, c) ...`` (several entries on one line) in
    ``Args:``, ``Attributes:`` and ``Raises:`` become one ``name: description`` line per
    name. ``known(kind, name)`` says whether ``name`` is a parameter, an attribute or an
    exception, so that a sentence such as "Default: ..." inside a description is left
    alone."""
    lines = text.splitlines()
    out: List[str] = []
    kind: Optional[str] = None
    entry_indent: Optional[int] = None
    i = 0
    while i < len(lines):
        line = lines[i]
        header = SECTION.match(line)
        if header:
            kind = ENTRY_SECTIONS.get(header.group(1))
            entry_indent = None
            out.append(line)
            i += 1
            continue
        if kind and line.strip():
            if entry_indent is None:
                entry_indent = _indent(line)
            if _indent(line) < entry_indent:
                kind = None
            elif _indent(line) == entry_indent:
                end = i + 1
                # an entry goes on over more-indented lines, and over lines at its own
                # indentation that start no entry of their own (wrapped names or text)
                while (end < len(lines) and lines[end].strip() and
                       (_indent(lines[end]) > entry_indent or not _starts_entry(lines[end], known, kind)
                        or _colon(" ".join(lines[i:end])) is None)):
                    end += 1
                entry = " ".join(part.strip() for part in lines[i:end])
                out += _entries(entry, entry_indent, lambda name: known(kind, name))
                i = end
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


def _starts_entry(line: str, known, kind: str) -> bool:
    colon = _colon(line.strip())
    names = _split_names(line.strip()[:colon]) if colon is not None else None
    return names is not None and all(known(kind, name) for name, _ in names)


def _colon(text: str) -> Optional[int]:
    """Index of the first ": " outside parentheses and backticks, or None."""
    depth, code = 0, False
    for index, char in enumerate(text):
        if char == "`":
            code = not code
        elif code:
            continue
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == ":" and depth == 0 and text[index + 1:index + 2] in (" ", ""):
            return index
    return None


ENTRY_NAME = re.compile(r"[A-Za-z_*][A-Za-z0-9_*]*(\s*\(.*\))?")
NEXT_ENTRY = re.compile(r"(?<=\.)\s+(?=(?P<names>[A-Za-z_][A-Za-z0-9_]*(, [A-Za-z_][A-Za-z0-9_]*)*): )")


def _entries(entry: str, indent: int, known) -> List[str]:
    """One entry (joined onto one line), split into one line per documented name."""
    prefix = " " * indent
    colon = _colon(entry)
    names = _split_names(entry[:colon]) if colon is not None else None
    if names is None or not all(known(name) for name, _ in names):
        return [prefix + entry]
    description = entry[colon + 1:].strip()
    # "a: (B, H). b: (H,) or None." -> several entries on one line
    cuts = [m.start() for m in NEXT_ENTRY.finditer(description)
            if all(known(n.strip()) for n in m["names"].split(","))]
    pieces = [description[a:b].strip() for a, b in zip([0] + cuts, cuts + [len(description)])]
    lines = [f"{prefix}{name}: {pieces[0]}" + (f" ({note})" if note else "") for name, note in names]
    for piece in pieces[1:]:
        lines += _entries(piece, indent, known)
    return lines


def _split_names(text: str):
    """``"a, b (x | y), c"`` -> [("a", ""), ("b", "x | y"), ("c", "")]; None if ``text``
    is not a list of names."""
    names = []
    depth, start = 0, 0
    parts = []
    for index, char in enumerate(text):
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    for part in parts:
        part = part.strip()
        if not ENTRY_NAME.fullmatch(part):
            return None
        name, _, note = part.partition("(")
        names.append((name.strip(), note[:-1].strip() if note else ""))
    return names or None


def _known(obj: griffe.Object):
    """``known(kind, name)`` for the sections of ``obj``'s docstring."""
    function = obj
    if obj.is_class and "__init__" in obj.members:
        function = obj.members["__init__"]
    parameters = {p.name for p in function.parameters} if function.is_function else set()

    def known(kind: str, name: str) -> bool:
        if kind == "parameters":
            return name in parameters
        if kind == "attributes":
            return name in obj.members or name in parameters
        return bool(re.fullmatch(r"[A-Z][A-Za-z0-9]*", name))  # an exception class

    return known


class RestDocstrings(griffe.Extension):
    """Rewrite every docstring of the package once it is fully loaded."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs) -> None:
        if pkg.name == PACKAGE:
            objects = list(_objects(pkg))
            for obj in objects:  # first every docstring, so that references can see them
                if obj.docstring is None and obj.is_attribute:
                    comment = _comment_docstring(obj)
                    if comment:
                        obj.docstring = griffe.Docstring(comment, parent=obj)
            for obj in objects:
                if obj.docstring is not None:
                    obj.docstring.value = self._convert(obj.docstring.value, obj, pkg)

    def _convert(self, text: str, obj: griffe.Object, pkg: griffe.Module) -> str:
        text = _blocks(text)
        text = _split_entries(text, _known(obj))
        text = _escape_intraword_stars(text)
        text = INLINE_MATH.sub(lambda m: f"${m['tex']}$", text)
        return ROLE.sub(lambda m: self._reference(m["target"], obj, pkg), text)

    def _reference(self, target: str, obj: griffe.Object, pkg: griffe.Module) -> str:
        target = re.sub(r"\s+", "", target)  # a role may wrap onto the next line
        shown = target.lstrip("~!")
        short = shown.rsplit(".", 1)[-1] if target.startswith("~") else shown
        path = _resolve(shown, obj, pkg)
        if path is None:
            if shown.split(".")[0] == PACKAGE:
                LOG.warning("%s: docstring refers to %r, which does not exist", obj.path, target)
            return f"`{short}`"
        if any(part.startswith("_") and not part.startswith("__") for part in path.split(".")):
            return f"`{short}`"  # private: not in the API reference
        if not _documented(pkg, path):
            return f"`{short}`"  # no docstring: mkdocstrings does not render it
        return f"[`{short}`][{path}]"


def _objects(obj: griffe.Object):
    """``obj`` and every member below it, aliases (imported names) left out."""
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)


def _documented(pkg: griffe.Module, path: str) -> bool:
    """Whether the API reference shows ``path``: it, or one of its members, has a
    docstring (mkdocstrings leaves out the rest)."""
    found = pkg[path[len(PACKAGE) + 1:]] if path != PACKAGE else pkg
    return found.has_docstrings


def _comment_docstring(attribute: griffe.Object) -> str:
    """The ``#:`` comment lines just above ``attribute``'s assignment, joined."""
    lines = attribute.module.lines
    comments: List[str] = []
    index = (attribute.lineno or 1) - 2
    while index >= 0 and lines[index].strip().startswith("#:"):
        comments.insert(0, lines[index].strip()[2:].strip())
        index -= 1
    return "\n".join(comments)


def _resolve(name: str, obj: griffe.Object, pkg: griffe.Module) -> Optional[str]:
    """Full path of ``name`` seen from ``obj`` (its scope, then its parents', then the
    package root), or None when it is not a gatedrnn object."""
    candidates = []
    if name.split(".")[0] == PACKAGE:
        candidates.append(name[len(PACKAGE) + 1:] if "." in name else "")
    scope: Optional[griffe.Object] = obj
    while scope is not None:
        candidates.append(f"{scope.path[len(PACKAGE) + 1:]}.{name}".lstrip("."))
        scope = scope.parent
    for candidate in candidates:
        try:
            found = pkg[candidate] if candidate else pkg
        except (KeyError, griffe.AliasResolutionError):
            continue
        try:
            return found.final_target.path if found.is_alias else found.path
        except griffe.AliasResolutionError:
            return found.path
    return None
