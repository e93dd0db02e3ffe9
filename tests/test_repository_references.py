"""Everything the repository cites must be inside the repository (docs/design.rst).

1. No tracked file (code, docs, README, tests, benchmarks, notebooks, error messages) points
   outside the repository: to the team's shared folder or to the specification files the
   documentation was written from. The mathematics ships as ``docs/``; code cites its pages.
2. Every citation ``docs/<page>.rst §N.M`` names a section that exists in that page (the
   numbered headings of the paper pages), and every ``docs/checks.rst ID`` a check section.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# Built by concatenation so that this file does not match its own patterns.
_SHARED = "sha" + "red"
_SPEC_FILES = ("unibio", "borep", "fdehbo", "sid_bsgm", "baselines", "claims", "claims-ledger",
               "DESIGN")
OUTSIDE_PATTERNS = {
    "relative path to the shared folder": re.compile(re.escape("../" + _SHARED)),
    "absolute path to the shared folder": re.compile(re.escape("/work/" + _SHARED)),
    "specification file": re.compile(
        r"(?<![\w/-])(?:spec/)?(?:" + "|".join(re.escape(n) for n in _SPEC_FILES) + r")"
        + re.escape(".") + "md" + r"\b"),
}

_SKIP_DIRS = {".git", ".venv", ".tox", "build", "dist", "_build", "__pycache__", ".hypothesis",
              ".pytest_cache", ".mypy_cache", ".ruff_cache", "check-results", "sweep-results",
              "runs"}


def repository_files() -> list[Path]:
    """Tracked files plus untracked ones git does not ignore (a new file counts before its commit).

    Without git (an unpacked sdist), every file outside build and cache folders.
    """
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT, capture_output=True, check=True, timeout=60).stdout
        names = [n for n in listed.decode("utf-8", "surrogateescape").split("\0") if n]
        return [ROOT / n for n in sorted(set(names)) if (ROOT / n).is_file()]
    except (OSError, subprocess.SubprocessError):
        return [p for p in sorted(ROOT.rglob("*"))
                if p.is_file() and not _SKIP_DIRS.intersection(p.relative_to(ROOT).parts)
                and not any(part.endswith(".egg-info") for part in p.parts)]


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None  # a figure or another binary file: nothing to cite in it


def test_repository_files_are_found():
    files = {p.relative_to(ROOT).as_posix() for p in repository_files()}
    # the check is only as good as the listing: it must see the code, the docs and itself
    assert {"README.md", "docs/conf.py", "tests/test_repository_references.py"} <= files


def test_nothing_points_outside_the_repository():
    offenders = []
    for path in repository_files():
        text = _text(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            for kind, pattern in OUTSIDE_PATTERNS.items():
                if pattern.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {kind}: {line.strip()}")
    assert not offenders, ("cite the pages under docs/ instead (docs/unibio.rst §3.5, "
                           "docs/checks.rst U1, docs/design.rst):\n" + "\n".join(offenders))


def test_outside_patterns_catch_what_they_should():
    # the control: each kind of reference this test exists to forbid is caught
    examples = ["see ../" + _SHARED + "/spec/", "/work/" + _SHARED + "/DESIGN.md",
                "spec unibio" + ".md §3.5", "(sid_bsgm" + ".md §14.1)",
                "claims-ledger" + ".md", "spec/claims" + ".md"]
    for example in examples:
        assert any(p.search(example) for p in OUTSIDE_PATTERNS.values()), example
    assert not any(p.search("docs/unibio.rst §3.5 and README.md") for p in
                   OUTSIDE_PATTERNS.values())


# ---------------------------------------------------------------------------------------------
# Citations of documentation sections

_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+.:_])\1+\s*$")
_SECTION_NUMBER = re.compile(r"^(\d+(?:\.\d+)*)\s")
_CHECK_ID = re.compile(r"^([A-Z]\d+)\b")
_NUM = r"\d+(?:\.\d+)*"
# "docs/unibio.rst §1.4-1.6, §3.1 and §3.2": the first section, then ranges and lists
_CITATION = re.compile(r"docs/(?P<page>[a-z_]+)\.rst(?=(?P<rest>[^\n]{0,200}))")
_FIRST = re.compile(r"^\s*§(" + _NUM + ")")
_MORE = re.compile(r"^(?:\s*[-–]\s*§?(" + _NUM + r")|\s*(?:,|\band\b)\s*§(" + _NUM + "))")
_CHECK_CITED = re.compile(r"^\s*([A-Z]\d+)(?:\s*[-–]\s*([A-Z]\d+))?\b")


def headings(page: Path) -> list[str]:
    """Section titles of a reStructuredText page (underlined, optionally overlined)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    titles = []
    for above, line in zip(lines, lines[1:], strict=False):  # pairs of adjacent lines
        title = above.strip()
        if (title and _UNDERLINE.match(line) and len(line.rstrip()) >= len(title)
                and not _UNDERLINE.match(above)):
            titles.append(title)
    return titles


def numbered_sections(page: Path) -> set[str]:
    numbers = set()
    for title in headings(page):
        match = _SECTION_NUMBER.match(title + " ")
        if match:
            numbers.add(match.group(1).rstrip("."))
    return numbers


def check_sections(page: Path) -> set[str]:
    return {m.group(1) for t in headings(page) if (m := _CHECK_ID.match(t))}


def _joined(text: str) -> str:
    # a citation may wrap: "docs/unibio.rst\n    # §3.5" or a docstring's next line
    return re.sub(r"[ \t]*\n[ \t]*(?:#+[ \t]*|\*[ \t]+)?", " ", text)


def cited_sections(text: str) -> list[tuple[str, str]]:
    """(page, section or check id) for every citation in ``text``."""
    found = []
    for citation in _CITATION.finditer(_joined(text)):
        page, rest = citation.group("page"), citation.group("rest")
        if page == "checks":
            match = _CHECK_CITED.match(rest)
            if match:
                found.extend((page, ident) for ident in match.groups() if ident)
            continue
        first = _FIRST.match(rest)
        if not first:
            continue
        found.append((page, first.group(1)))
        rest = rest[first.end():]
        while more := _MORE.match(rest):
            found.append((page, more.group(1) or more.group(2)))
            rest = rest[more.end():]
    return found


def test_cited_sections_parser():
    text = ("(docs/unibio.rst §1.4-1.6, §3.1 and §3.2; docs/borep.rst\n    # §8) "
            "docs/checks.rst U1-U5 and docs/sid_bsgm.rst §2-§4. docs/design.rst, §9 of the paper")
    assert cited_sections(text) == [
        ("unibio", "1.4"), ("unibio", "1.6"), ("unibio", "3.1"), ("unibio", "3.2"),
        ("borep", "8"), ("checks", "U1"), ("checks", "U5"), ("sid_bsgm", "2"),
        ("sid_bsgm", "4")]


def test_every_cited_docs_section_exists():
    sections: dict[str, set[str]] = {}
    for page in DOCS.glob("*.rst"):
        sections[page.stem] = (check_sections(page) if page.stem == "checks"
                               else numbered_sections(page))
    broken, checked = [], 0
    for path in repository_files():
        text = _text(path)
        if text is None:
            continue
        for page, section in cited_sections(text):
            checked += 1
            if section not in sections.get(page, set()):
                broken.append(f"{path.relative_to(ROOT)}: docs/{page}.rst §{section}"
                              if page != "checks" else
                              f"{path.relative_to(ROOT)}: docs/checks.rst {section}")
    assert checked > 0
    assert not broken, "cited sections missing from the docs pages:\n" + "\n".join(sorted(broken))


def test_cited_pages_exist():
    missing = sorted({f"{path.relative_to(ROOT)}: docs/{m.group('page')}.rst"
                      for path in repository_files() if (text := _text(path)) is not None
                      for m in _CITATION.finditer(text)
                      if not (DOCS / f"{m.group('page')}.rst").is_file()})
    assert not missing, "cited docs pages that do not exist:\n" + "\n".join(missing)


def test_every_theory_check_has_a_docs_section():
    # docs/checks.rst has one section per check id: a new check is documented with it
    declared = {}
    for script in sorted((ROOT / "theory_checks").glob("*.py")):
        match = re.search(r'CLAIM\s*=\s*ClaimInfo\(\s*id\s*=\s*"([A-Z]\d+)"', _text(script) or "")
        if match:
            declared[match.group(1)] = script.name
    assert len(declared) >= 22, declared  # the listing must find the checks it guards
    missing = sorted(f"{ident} ({name})" for ident, name in declared.items()
                     if ident not in check_sections(DOCS / "checks.rst"))
    assert not missing, "checks without a section in docs/checks.rst: " + ", ".join(missing)
