"""Which registered problems a problem-generic check runs on (``refbilevel check U1 --problem
NAME``; docs/checks.rst).

A problem-generic check (U1-U5, X1, X2) declares ``PROBLEM_GENERIC = True`` and takes
``measure(..., problems=None)``. With ``problems=None`` it runs its own instance table (the
library's families at the parameters its docstring justifies) plus the default instance of
every other registered problem it applies to, a user's included; with a list of names it runs
exactly those (their default instances) and nothing else. Either way the verdict lists the
registered problems it skipped and why (:func:`select_problems`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

#: ``applies(problem)`` returns None when the check applies, else the reason it does not
Applies = Callable[[Any], "str | None"]


class ProblemSelectionError(ValueError):
    """``--problem`` named an unknown problem, or none the check applies to: bad input (the
    CLI exits 2), not a failed check."""


@dataclass(frozen=True)
class Skipped:
    name: str
    reason: str


@dataclass
class Selection:
    """The registry instances a check runs on and the ones it skipped (with reasons)."""

    instances: list[tuple[str, str, Any]] = field(default_factory=list)  # (name, label, P)
    skipped: list[Skipped] = field(default_factory=list)
    explicit: bool = False  # names were given: the check's own table is not used

    def report(self) -> dict[str, Any]:
        """For a verdict's ``measured``: what ran from the registry and what was skipped."""
        return {"mode": "--problem" if self.explicit else "all registered",
                "registry_instances": [label for _, label, _ in self.instances],
                "skipped": [asdict(s) for s in self.skipped]}


def select_problems(check_id: str, names: Iterable[str] | None, applies: Applies, *,
                    covered: Iterable[str] = (),
                    excluded: dict[str, str] | None = None) -> Selection:
    """The registered problems ``check_id`` runs on (module docstring).

    ``covered``: registry names whose families the check's own instance table already runs
    (their default instance is not added again when ``names`` is None). ``excluded``: name ->
    why the default run leaves that problem out (it still runs when named). An unknown name is
    a ValueError (from the registry); so is a list of names none of which the check applies to.
    """
    from refbilevel.problems import problem_names
    from refbilevel.problems.registry import problem_entry
    from refbilevel.solver import default_instance

    explicit = names is not None
    covered = set(covered)
    wanted = list(names) if names is not None else [
        n for n in problem_names() if n not in covered]
    sel = Selection(explicit=explicit)
    for name, why in (excluded or {}).items():
        if not explicit and name in wanted:
            wanted.remove(name)
            sel.skipped.append(Skipped(name, why))
    for name in wanted:
        if explicit:
            try:
                problem_entry(name)
            except ValueError as exc:
                raise ProblemSelectionError(f"{check_id}: {exc}") from None
        try:
            problem = default_instance(name)
        except Exception as exc:  # a factory with required parameters or a broken one
            sel.skipped.append(Skipped(name, f"no default instance: {type(exc).__name__}: "
                                             f"{exc}"))
            continue
        why_not = applies(problem)
        if why_not is not None:
            sel.skipped.append(Skipped(name, why_not))
        else:
            sel.instances.append((name, f"{name} (registry default)", problem))
    if explicit and not sel.instances:
        reasons = "; ".join(f"{s.name}: {s.reason}" for s in sel.skipped)
        raise ProblemSelectionError(f"{check_id} applies to none of the problems given with "
                                    "--problem "
                         f"({reasons})")
    return sel


def is_bilevel(problem: Any) -> str | None:
    """None for a :class:`~refbilevel.problems.base.BilevelProblem`, else the reason."""
    from refbilevel.problems.base import BilevelProblem

    if isinstance(problem, BilevelProblem):
        return None
    return (f"{type(problem).__name__} is not a BilevelProblem (no lower-level argmin y*; "
            "a fixed-point problem is covered by the S checks)")


def needs_constants(*names: str) -> Applies:
    """An ``applies`` that wants a BilevelProblem stating the given constants."""
    def applies(problem: Any) -> str | None:
        reason = is_bilevel(problem)
        if reason is not None:
            return reason
        missing = [n for n in names if getattr(problem.constants, n) is None]
        if missing:
            return f"constants {', '.join(missing)} not stated (None)"
        return None
    return applies
