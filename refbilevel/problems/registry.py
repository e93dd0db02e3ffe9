"""The problem registry: every problem, the library's or a user's, by name (docs/design.rst
§Contracts: "A public registry (and an entry-point group) makes any problem available by name
to solve, the CLI, sweeps and the problem-generic checks").

Three ways in, one table:

- the library's own families, listed in :mod:`refbilevel.problems` as ``"module:attribute"``
  strings (imported on first use, so one broken family cannot hide the others);
- :func:`register` ``(name, factory)`` from user code; ``refbilevel --import MODULE`` imports
  a module that calls it, so the CLI (run, sweep, check, list) sees its problems;
- the entry-point group ``refbilevel.problems`` of any installed distribution: an entry
  ``name = package.module:factory`` in its ``setup.cfg`` (``[options.entry_points]``) or
  ``pyproject.toml`` (``[project.entry-points."refbilevel.problems"]``). The group is read
  the first time the registry is listed or asked for an unknown name, and an entry's module
  is imported only when that problem is made.

A factory is any callable returning a problem (a class, or a function of keyword
parameters). Its description is the first line of its docstring and its parameters are
read from its signature, both only when listed.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from refbilevel.validation import require_choice

ENTRY_POINT_GROUP = "refbilevel.problems"

#: where an entry came from (shown by ``refbilevel list``)
ORIGINS = ("builtin", "user", "entry-point")


@dataclass(frozen=True)
class ProblemParameter:
    """One keyword parameter of a factory, as its signature states it."""

    name: str
    default: Any  # inspect.Parameter.empty when required
    annotation: str

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    def __str__(self) -> str:
        return self.name if self.required else f"{self.name}={self.default!r}"


@dataclass(frozen=True)
class ProblemEntry:
    """A registered problem: its name, its factory (or a lazy ``"module:attribute"``
    reference to it) and where it came from."""

    name: str
    target: Callable[..., Any] | str
    origin: str
    description_override: str | None = None

    def factory(self) -> Callable[..., Any]:
        """The factory itself (imports its module for a lazy reference)."""
        if callable(self.target):
            return self.target
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)

    @property
    def description(self) -> str:
        if self.description_override is not None:
            return self.description_override
        doc = (inspect.getdoc(self.factory()) or "").strip()
        return doc.splitlines()[0] if doc else "(no docstring)"

    @property
    def parameters(self) -> tuple[ProblemParameter, ...]:
        try:
            sig = inspect.signature(self.factory())
        except (TypeError, ValueError):  # a builtin or C callable without a signature
            return ()
        return tuple(
            ProblemParameter(p.name, p.default,
                             "" if p.annotation is inspect.Parameter.empty else str(p.annotation))
            for p in sig.parameters.values()
            if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD))


_ENTRIES: dict[str, ProblemEntry] = {}
_entry_points_loaded = False


def register(name: str, factory: Callable[..., Any] | str, *, description: str | None = None,
             replace: bool = False, _origin: str = "user") -> None:
    """Make ``factory(**params)`` available as the problem ``name`` everywhere a problem is
    named (``make_problem``, ``refbilevel run --problem``, sweeps, the checks' ``--problem``).

    ``factory`` is a callable returning a problem, or a ``"module:attribute"`` string naming
    one (imported on first use). ``description`` overrides the factory's first docstring line.
    Registering a name twice is an error unless ``replace=True`` (two families cannot share
    a name by accident).
    """
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise ValueError(f"problem name must be a non-empty string without surrounding "
                         f"spaces, got {name!r}")
    if isinstance(factory, str):
        module, sep, attr = factory.partition(":")
        if not (module and sep and attr):
            raise ValueError(f"factory must be a callable or 'module:attribute', got {factory!r}")
    elif not callable(factory):
        raise ValueError(f"factory must be a callable or 'module:attribute', got "
                         f"{type(factory).__name__}")
    require_choice("origin", _origin, ORIGINS)
    if name in _ENTRIES and not replace:
        raise ValueError(f"problem {name!r} is already registered ({_ENTRIES[name].origin}: "
                         f"{_ENTRIES[name].target!r}); pass replace=True to override it")
    _ENTRIES[name] = ProblemEntry(name, factory, _origin, description)


def unregister(name: str) -> None:
    """Remove ``name`` from the registry (ValueError if it is not there)."""
    if name not in _ENTRIES:
        raise ValueError(f"unknown problem {name!r}; known: {', '.join(problem_names())}")
    del _ENTRIES[name]


def _load_entry_points() -> None:
    """Register the installed ``refbilevel.problems`` entry points (once; lazily)."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _ENTRIES:  # the library's own names and user registrations win
            _ENTRIES[ep.name] = ProblemEntry(ep.name, ep.value, "entry-point")


def reload_entry_points() -> None:
    """Read the entry-point group again (after installing a distribution in this process)."""
    global _entry_points_loaded
    for name in [n for n, e in _ENTRIES.items() if e.origin == "entry-point"]:
        del _ENTRIES[name]
    _entry_points_loaded = False
    _load_entry_points()


def registered() -> list[ProblemEntry]:
    """Every registered problem, sorted by name."""
    _load_entry_points()
    return [_ENTRIES[n] for n in sorted(_ENTRIES)]


def problem_names() -> list[str]:
    """The registered names, sorted."""
    return [e.name for e in registered()]


def problem_entry(name: str) -> ProblemEntry:
    if name not in _ENTRIES:
        _load_entry_points()
    if name not in _ENTRIES:
        raise ValueError(f"unknown problem {name!r}; known: {', '.join(problem_names())} "
                         "(a problem of your own: refbilevel.problems.register, or "
                         "`refbilevel --import MODULE`)")
    return _ENTRIES[name]


def problem_factory(name: str) -> Callable[..., Any]:
    """The factory registered as ``name``."""
    return problem_entry(name).factory()


def make_problem(name: str, **params: Any) -> Any:
    """Build the registered problem ``name`` with keyword parameters."""
    return problem_factory(name)(**params)


def import_problem_modules(modules: list[str] | tuple[str, ...]) -> None:
    """Import modules that register problems (``refbilevel --import``); a module that cannot
    be imported is a ValueError naming it. The current directory is searched too, as
    ``python -m`` does (a console script's sys.path does not hold it)."""
    for module in modules:
        try:
            with _current_directory_on_path():
                importlib.import_module(module)
        except ImportError as exc:
            raise ValueError(f"--import {module}: cannot import it ({exc}); give a module "
                             "importable from the current directory or sys.path, e.g. "
                             "mypackage.problems") from None


@contextlib.contextmanager
def _current_directory_on_path():
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.append(cwd)
    try:
        yield
    finally:
        if added:
            sys.path.remove(cwd)
