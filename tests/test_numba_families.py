"""The Numba problem contract (refbilevel/backends/numba_problems.py): one registry of
families keyed by name and record type, records read by field name in every kernel, user
families compiled per process and never written to the on-disk cache."""

import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

pytest.importorskip("numba")

from refbilevel.backends import numba_problems as nprob  # noqa: E402
from refbilevel.backends.registry import NotImplementedOnBackendError  # noqa: E402

PACKAGE = Path(nprob.__file__).resolve().parents[1]


def test_library_families_have_distinct_names_and_record_types():
    fams = nprob.families()
    assert len({f.record for f in fams.values()}) == len(fams)
    assert {"unibio-example3", "quadratic-dense", "quadratic-householder",
            "relaxed-smooth-p1", "relaxed-smooth-p2"} <= set(fams)


def test_registry_refuses_a_second_family_with_a_taken_name_or_record():
    fam = nprob.families()["unibio-example3"]

    class Other(NamedTuple):
        p: float

    with pytest.raises(ValueError, match="already registered"):
        nprob.register_numba_family(nprob.NumbaFamily(
            fam.name, fam.problem_class, Other, fam.build, {}))
    with pytest.raises(ValueError, match="already belongs to family 'unibio-example3'"):
        nprob.register_numba_family(nprob.NumbaFamily(
            "another-name", fam.problem_class, fam.record, fam.build, {}))
    with pytest.raises(ValueError, match="unknown primitives"):
        nprob.register_numba_family(nprob.NumbaFamily(
            "bad-primitive", fam.problem_class, Other, fam.build, {"hessian": None}))
    with pytest.raises(ValueError, match="NamedTuple"):
        nprob.register_numba_family(nprob.NumbaFamily(
            "bad-record", fam.problem_class, tuple, fam.build, {}))


def test_no_kernel_indexes_a_problem_record_by_position():
    """Records are read by field (P.y_ref), never P[4], V[4] or M[3][0]."""
    pattern = re.compile(r"\b(P|Pr|V|M|L|LI|LO)\[\d")
    offenders = [f"{p.name}:{i}" for p in PACKAGE.rglob("*_numba.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1)
                 if pattern.search(line)]
    offenders += [f"numba_families.py:{i}" for i, line in enumerate(
        (PACKAGE / "backends" / "numba_families.py").read_text().splitlines(), 1)
        if pattern.search(line)]
    assert offenders == []


def test_a_problem_without_a_family_is_refused_by_name():
    class Unknown:
        pass

    with pytest.raises(NotImplementedOnBackendError, match="problem class Unknown"):
        nprob.numba_problem(Unknown())
    assert not nprob.supports(Unknown())


@pytest.mark.numba
def test_user_family_runs_matches_numpy_and_is_not_cached():
    from refbilevel.estimators.neumann import neumann_hypergradient
    from refbilevel.estimators.neumann_numba import neumann_hypergradient_numba, neumann_kernel
    from refbilevel.oracles.gaussian import GaussianOracle, NoiseConfig
    from tests.numba_user_family import UserSeparable, UserSeparableRecord

    P = UserSeparable(d=3, p=4.0)
    assert isinstance(nprob.numba_problem(P), UserSeparableRecord)
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (4, 3))
    y = rng.uniform(0.2, 1.0, (4, 3))
    vals = []
    for f in (neumann_hypergradient, neumann_hypergradient_numba):
        o = GaussianOracle(P, NoiseConfig.uniform(0.3), np.random.default_rng(11))
        vals.append(f(o, x, y, 5, alpha=0.2).value)
    # 1e-12 relative: the same tolerance as the library's own parity tests (claim X4)
    assert np.max(np.abs(vals[0] - vals[1])) <= 1e-12 * np.max(np.abs(vals[0]))
    # compiled for the user's record in this process, but not written to the disk cache
    sigs = [sig for sig in neumann_kernel.overloads if any(
        getattr(t, "instance_class", None) is UserSeparableRecord for t in sig)]
    assert sigs
    index = neumann_kernel._cache._cache_file._load_index()
    assert not any("UserSeparableRecord" in str(key) for key in index)


def _plain_python(a):
    """Not compiled: Numba cannot call it from compiled code."""
    return a


def _closed_form(grad_y_g=None):
    from refbilevel.problems.constants import Constants
    from refbilevel.problems.custom import ClosedFormProblem

    # the example of problems/custom.py (UniBiO Example 3 at p = 2, docs/unibio.rst §6.1)
    return ClosedFormProblem(
        d_x=1, d_y=1,
        f=lambda x, y: np.sin(np.clip(y, -np.pi / 2, np.pi / 2))[..., 0],
        g=lambda x, y: (0.5 * y**2 - y * np.sin(x))[..., 0],
        grad_x_f=lambda x, y: np.zeros_like(x),
        grad_y_f=lambda x, y: np.where(np.abs(y) <= np.pi / 2, np.cos(y), 0.0),
        grad_x_g=lambda x, y: -y * np.cos(x),
        grad_y_g=grad_y_g or (lambda x, y: y - np.sin(x)),
        hvp_yy_g=lambda x, y, v: v + 0 * y,
        jvp_xy_g=lambda x, y, v: -np.cos(x) * v,
        jvp_yx_g=lambda x, y, w: -np.cos(x) * w,
        y_star=lambda x: np.sin(x),
        constants=Constants(mu=1.0, p=2.0, l_g1=1.0),
    )


@pytest.mark.numba
@pytest.mark.slow  # a user family compiles in every process (never cached): ~20 s per CI run
def test_closed_form_problem_runs_the_numba_estimators_when_its_callables_compile():
    from refbilevel.estimators.neumann import neumann_hypergradient
    from refbilevel.estimators.neumann_numba import neumann_hypergradient_numba
    from refbilevel.oracles.gaussian import GaussianOracle, NoiseConfig

    P = _closed_form()
    x = np.linspace(-1, 1, 6)[:, None]
    y = np.linspace(-0.5, 0.8, 6)[:, None]
    for variant in ("classical", "generalized"):  # generalized: the chain rule, p = 2
        vals = []
        for f in (neumann_hypergradient, neumann_hypergradient_numba):
            o = GaussianOracle(P, NoiseConfig.uniform(0.3), np.random.default_rng(11))
            vals.append(f(o, x, y, 5, alpha=0.2, variant=variant).value)
        assert np.max(np.abs(vals[0] - vals[1])) <= 1e-12 * np.max(np.abs(vals[0]))


@pytest.mark.numba
def test_closed_form_problem_runs_on_numba_when_its_callables_compile():
    from refbilevel.algorithms.soba import run_soba
    from refbilevel.algorithms.soba_numba import run_soba_numba, soba_kernel
    from refbilevel.backends.numba_families import ClosedFormRecord
    from refbilevel.oracles.gaussian import GaussianOracle, NoiseConfig

    P = _closed_form()
    x = np.linspace(-1, 1, 6)[:, None]
    y = np.linspace(-0.5, 0.8, 6)[:, None]
    traces = [run(GaussianOracle(P, NoiseConfig.uniform(0.1), np.random.default_rng(2)),
                  x, y, T=50, record_every=25) for run in (run_soba, run_soba_numba)]
    assert np.max(np.abs(traces[0].x - traces[1].x)) <= 1e-12 * np.max(np.abs(traces[0].x))
    # compiled in this process for the problem's functions; nothing of it on disk
    index = soba_kernel._cache._cache_file._load_index()
    assert not any("ClosedFormRecord" in str(key) for key in index)
    assert any(getattr(t, "instance_class", None) is ClosedFormRecord
               for sig in soba_kernel.overloads for t in sig)


@pytest.mark.numba
def test_closed_form_problem_with_a_callable_numba_cannot_compile_is_refused():
    P = _closed_form(grad_y_g=lambda x, y: _plain_python(y) - np.sin(x))
    with pytest.raises(NotImplementedOnBackendError, match="callable 'grad_y_g' cannot be "
                                                           "compiled by Numba"):
        nprob.numba_problem(P)
