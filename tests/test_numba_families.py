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
