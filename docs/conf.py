"""Sphinx configuration of the refbilevel documentation.

The build must pass offline with warnings as errors (``tox -e docs``): MathJax is referenced,
not fetched, at build time; no intersphinx; optional packages (CuPy) are mocked for autodoc.
"""

from __future__ import annotations

import io
import os
import re
import sys

from docutils import nodes
from docutils.parsers.rst import Directive
from docutils.statemachine import StringList

sys.path.insert(0, os.path.abspath(".."))

project = "refbilevel"
author = "the refbilevel authors"
copyright = "2026, the refbilevel authors"  # noqa: A001 (Sphinx's name)
release = "0.1.0"

# No napoleon: the docstrings are plain text whose "name : meaning" lines napoleon would read
# as types (it mangled neumann_hypergradient's); the verbatim fallback below shows them as written.
extensions = [
    "sphinx.ext.mathjax",
    "sphinx.ext.autodoc",
]

exclude_patterns = ["_build"]
root_doc = "index"

# autodoc must not import what the machine may lack: CuPy is optional (GPU only).
# (hypothesis is not mocked: refbilevel.testing's strategies are public API, and the docs extra
# installs it.)
autodoc_mock_imports = ["cupy", "cupyx"]
autodoc_default_options = {
    "members": True,
    "undoc-members": False,
    "show-inheritance": True,
    # document each object once, where it is defined, not again where a package re-exports it
    "ignore-module-all": True,
}
autodoc_typehints = "none"
autodoc_member_order = "bysource"

html_theme = "alabaster"
html_static_path: list[str] = []
html_title = "refbilevel"

nitpicky = False


# Docstrings in this package are written as plain text with Unicode mathematics (||x||, y*,
# [y]^{∘(p-1)}), some with Sphinx roles. Those that parse as clean reStructuredText are rendered
# as such; any other is shown verbatim as a literal block, so that a docstring never breaks the
# warnings-as-errors build and never renders wrongly (|x| read as a substitution, say).
_SPHINX_ROLE = re.compile(r":(?:py:)?[a-z]+:`")


def _parses_cleanly(text: str) -> bool:
    from docutils.core import publish_doctree
    from docutils.utils import Reporter

    # indented under a paragraph, as autodoc nests it: a section title there is an error too
    neutral = "docstring\n\n" + "\n".join("    " + line for line in
                                          _SPHINX_ROLE.sub("`", text).splitlines())
    messages = io.StringIO()
    settings = {"report_level": Reporter.WARNING_LEVEL, "halt_level": Reporter.SEVERE_LEVEL + 1,
                "warning_stream": messages}
    try:
        publish_doctree(neutral, settings_overrides=settings)
    except Exception:  # noqa: BLE001 (any parser failure means: show it verbatim)
        return False
    return not messages.getvalue()


def _render_docstring(app, what, name, obj, options, lines):  # noqa: ARG001 (Sphinx's signature)
    if not lines or _parses_cleanly("\n".join(lines)):
        return
    verbatim = ["::", ""] + ["    " + line if line.strip() else "" for line in lines] + [""]
    lines[:] = verbatim


_RST_SPECIAL = re.compile(r"([\\*|`_\[\]])")


def _escaped(text: str) -> str:
    """Plain text (the ledger's statements: ||x||, y*, [y]^(p-1)) as literal reST text."""
    return _RST_SPECIAL.sub(r"\\\1", text)


class ClaimsLedgerTable(Directive):
    """``.. claims-ledger:: PAPER`` renders that paper's rows of refbilevel.claims_ledger, and
    ``.. claims-ledger:: summary`` the counts by status, so the page and ``refbilevel claims``
    show the same ledger."""

    required_arguments = 1
    final_argument_whitespace = True

    def run(self):
        from refbilevel import claims_ledger as ledger

        which = self.arguments[0]
        if which == "summary":
            rows = [["paper", *ledger.STATUSES, "total"]]
            for paper, by_status in ledger.counts().items():
                rows.append([paper, *(str(by_status[s]) for s in ledger.STATUSES),
                             str(sum(by_status.values()))])
            widths = "30 14 14 14 14 14"
        else:
            if which not in ledger.PAPERS:
                raise self.error(f"claims-ledger: unknown paper {which!r}")
            rows = [["statement", "what it says", "formula from", "status", "checks", "note"]]
            for e in ledger.entries():
                if e.paper != which:
                    continue
                status = e.status + (f" ({e.outcome})" if e.outcome else "")
                checks = "; ".join(c.check + ("" if c.part == "all" else f" {c.part}")
                                   for c in e.checks)
                rows.append([e.number, e.statement, e.provenance, status, checks, e.note])
            widths = "14 30 10 10 16 20"
        lines = [".. list-table::", "   :header-rows: 1", f"   :widths: {widths}", ""]
        for row in rows:
            lines.append("   * - " + (_escaped(row[0]) or "\\ "))
            lines += ["     - " + (_escaped(cell) or "\\ ") for cell in row[1:]]
        node = nodes.container()
        self.state.nested_parse(StringList(lines, source="refbilevel.claims_ledger"),
                                self.content_offset, node)
        return node.children


class ApiByLayer(Directive):
    """``.. api-by-layer::`` documents every module of the package (``automodule``), found by
    walking it, so a new module appears in the API page without editing it. Each content line
    is ``Heading: prefix ...``; a module goes under the first heading with a matching prefix
    (``name`` matches the module and those below it, ``name=`` the module alone); modules no
    line claims go under a final "Everything else"."""

    has_content = True

    def run(self):
        import importlib
        import pkgutil

        package = importlib.import_module("refbilevel")
        modules = ["refbilevel"] + sorted(
            info.name for info in pkgutil.walk_packages(package.__path__, prefix="refbilevel.")
            if not info.name.endswith(".__main__"))
        groups: list[tuple[str, list[str]]] = []
        claimed: set[str] = set()
        for line in self.content:
            heading, _, prefixes = line.partition(":")
            members = []
            for name in modules:
                if name in claimed:
                    continue
                for prefix in prefixes.split():
                    exact = prefix.endswith("=")
                    stem = prefix.rstrip("=")
                    if name == stem or (not exact and name.startswith(stem + ".")):
                        members.append(name)
                        claimed.add(name)
                        break
            groups.append((heading.strip(), members))
        groups.append(("Everything else", [n for n in modules if n not in claimed]))
        lines = []
        for heading, members in groups:
            if not members:
                continue
            lines += [f".. rubric:: {heading}", ""]
            for name in members:
                lines += [f".. automodule:: {name}", ""]
        node = nodes.container()
        self.state.nested_parse(StringList(lines, source="api-by-layer"),
                                self.content_offset, node)
        return node.children


def setup(app):
    app.add_directive("api-by-layer", ApiByLayer)
    app.connect("autodoc-process-docstring", _render_docstring)
    app.add_directive("claims-ledger", ClaimsLedgerTable)
