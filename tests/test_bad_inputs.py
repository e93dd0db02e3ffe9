"""Bad inputs of the problem and oracle layers and of ``refbilevel check``: each is a one-line
ValueError naming the parameter and what is allowed (on the command line: exit 2, no
traceback), not a raw TypeError or NumPy error, and not silently accepted.

(The sweep's bad inputs are in test_sweeps.py; algorithm options belong to the solver's tests.)
"""

import numpy as np
import pytest

from refbilevel.cli import main
from refbilevel.oracles import GaussianOracle, MatrixNoiseOracle
from refbilevel.problems import make_problem
from refbilevel.problems.custom import ClosedFormProblem
from refbilevel.problems.quadratic import StronglyConvexQuadratic
from refbilevel.problems.unibio_example3 import UniBiOExample3

QUAD = StronglyConvexQuadratic(d_x=3, d_y=2, seed=0)


def _one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


# ---- make_problem / --problem-param ------------------------------------------------------
def test_make_problem_names_an_unknown_parameter_and_lists_the_allowed_ones():
    with pytest.raises(ValueError) as exc:
        make_problem("quadratic", nosuch=3)
    msg = _one_line(exc)
    assert msg.startswith("unknown parameter 'nosuch' of problem 'quadratic'; allowed: d_x, d_y")
    assert "mu" in msg and "seed" in msg


def test_make_problem_names_missing_parameters():
    with pytest.raises(ValueError, match=r"problem 'linear-contraction' needs parameters A, B"):
        make_problem("linear-contraction")


def test_cli_run_unknown_problem_param_exits_2_with_one_line(capsys):
    rc = main(["run", "soba", "--problem", "quadratic", "--problem-param", "nosuch=3",
               "--T", "1"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "unknown parameter 'nosuch'" in err and "allowed: d_x" in err


# ---- refbilevel check --seed --------------------------------------------------------------
@pytest.mark.parametrize("seed, match", [("-5", "seed must be an integer in [0, inf], got -5"),
                                         ("1.5", "seed must be an integer, got '1.5'")])
def test_check_bad_seed_is_rejected_at_parse_time(seed, match, capsys, tmp_path):
    # rejected by argparse: no check runs (out stays empty), exit 2, the error line names it
    with pytest.raises(SystemExit) as exc:
        main(["check", "U1", "--seed", seed, "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"refbilevel check: error: argument --seed: {match}"
    assert not (tmp_path / "out").exists()


# ---- problem methods: x, y, v with different replica counts --------------------------------
MISMATCHED = {
    "f": lambda P: P.f(np.zeros((3, 3)), np.zeros((2, 2))),
    "grad_x_f": lambda P: P.grad_x_f(np.zeros((3, 3)), np.zeros((2, 2))),
    "grad_y_g (size-1 replica axis)": lambda P: P.grad_y_g(np.zeros((1, 3)), np.zeros((4, 2))),
    "grad_y_g (extra axis)": lambda P: P.grad_y_g(np.zeros((2, 3)), np.zeros((4, 2, 2))),
    "hvp_yy_g": lambda P: P.hvp_yy_g(np.zeros((3, 3)), np.zeros((3, 2)), np.zeros((2, 2))),
    "jvp_yx_g": lambda P: P.jvp_yx_g(np.zeros((3, 3)), np.zeros((3, 2)), np.zeros((2, 3))),
    "solve_hessian_yy": lambda P: P.solve_hessian_yy(np.zeros((3, 3)), np.zeros((3, 2)),
                                                     np.ones((5, 2))),
    "oracle grad_x_g": lambda P: GaussianOracle(P, 0.1, np.random.default_rng(0)).grad_x_g(
        np.zeros((3, 3)), np.zeros((2, 2))),
}


@pytest.mark.parametrize("call", MISMATCHED.values(), ids=list(MISMATCHED))
def test_different_replica_counts_are_named(call):
    with pytest.raises(ValueError) as exc:
        call(QUAD)
    msg = _one_line(exc)
    assert "must have the same leading (replica) axes" in msg
    assert msg.startswith("x and y") and "got x (" in msg


def test_a_point_without_replica_axes_is_shared_by_every_replica():
    """The one broadcast that stays: x of shape (d_x,) is the same point for every y."""
    x, y = np.full(3, 0.3), np.arange(8.0).reshape(4, 2)
    np.testing.assert_array_equal(QUAD.grad_y_g(x, y), QUAD.grad_y_g(np.tile(x, (4, 1)), y))


# ---- zero replicas --------------------------------------------------------------------------
ZERO_REPLICAS = {
    "problem y_star": lambda: QUAD.y_star(np.zeros((0, 3))),
    "problem grad_x_f": lambda: QUAD.grad_x_f(np.zeros((0, 3)), np.zeros((0, 2))),
    "gaussian oracle hvp": lambda: GaussianOracle(QUAD, 0.1, np.random.default_rng(0)).hvp_yy_g(
        np.zeros((0, 3)), np.zeros((0, 2)), np.zeros((0, 2))),
}


@pytest.mark.parametrize("call", ZERO_REPLICAS.values(), ids=list(ZERO_REPLICAS))
def test_zero_replicas_are_named(call):
    with pytest.raises(ValueError) as exc:
        call()
    assert _one_line(exc) == ("x must hold at least one replica (leading axes of size >= 1), "
                              "got shape (0, 3)")


@pytest.mark.parametrize("draw", [
    lambda: GaussianOracle(QUAD, 0.1, np.random.default_rng(0)).draw("hvp", (0,)),
    lambda: MatrixNoiseOracle(QUAD, 0.1, 0.1, np.random.default_rng(0)).draw("hvp", (2, 0)),
], ids=["gaussian", "matrix-noise"])
def test_zero_size_noise_batch_is_named(draw):
    with pytest.raises(ValueError, match=r"batch_shape entries \(replica counts\) must be >= 1"):
        draw()


# ---- phi("abc"), GaussianOracle(None, ...) ---------------------------------------------------
@pytest.mark.parametrize("x", ["abc", [1, "a", 2], {"x": 1}])
def test_non_numeric_x_is_named(x):
    with pytest.raises(ValueError) as exc:
        QUAD.phi(x)
    assert _one_line(exc).startswith("x must be an array of real numbers of shape (..., 3), got ")


@pytest.mark.parametrize("args, match", [
    ((None, 0.1), "problem must be a refbilevel BilevelProblem .* got NoneType, which has no"),
    ((object(), 0.1), "problem must be a refbilevel BilevelProblem .* got object"),
    ((QUAD, None), "noise must be a NoiseConfig or a standard deviation >= 0, got None"),
    ((QUAD, "0.1"), "noise must be a NoiseConfig or a standard deviation >= 0, got '0.1'"),
    ((QUAD, -0.1), r"noise std grad_x_f must lie in \[0, inf\), got -0.1"),
])
def test_gaussian_oracle_rejects_a_bad_problem_or_noise(args, match):
    with pytest.raises(ValueError, match=match):
        GaussianOracle(*args, np.random.default_rng(0))


# ---- ClosedFormProblem callables returning the wrong shape -----------------------------------
def _example3_callables(**override):
    """UniBiO Example 3 at p = 2 (custom.py's docstring example), one callable replaced."""
    fns = dict(
        f=lambda x, y: np.sin(np.clip(y, -np.pi / 2, np.pi / 2))[..., 0],
        g=lambda x, y: (0.5 * y**2 - y * np.sin(x))[..., 0],
        grad_x_f=lambda x, y: np.zeros(1),  # a constant: broadcast to every replica
        grad_y_f=lambda x, y: np.where(np.abs(y) <= np.pi / 2, np.cos(y), 0.0),
        grad_x_g=lambda x, y: -y * np.cos(x),
        grad_y_g=lambda x, y: y - np.sin(x),
        hvp_yy_g=lambda x, y, v: v + 0 * y,
        jvp_xy_g=lambda x, y, v: -np.cos(x) * v,
        jvp_yx_g=lambda x, y, w: -np.cos(x) * w,
        y_star=lambda x: np.sin(x),
    )
    fns.update(override)
    return ClosedFormProblem(d_x=1, d_y=1, **fns)


WRONG_SHAPES = {
    # name: (override, the call that meets it, the shape the message reports)
    "y_star": (lambda x: np.sin(x)[..., 0], lambda P, x, y: P.grad_phi(x), "(4,)"),
    "hvp_yy_g": (lambda x, y, v: np.concatenate([v, v], -1), lambda P, x, y: P.grad_phi(x),
                 "(4, 2)"),
    "f": (lambda x, y: np.sin(y), lambda P, x, y: P.f(x, y), "(4, 1)"),
    "grad_x_g": (lambda x, y: (-y * np.cos(x))[:2], lambda P, x, y: P.grad_x_g(x, y), "(2, 1)"),
}


@pytest.mark.parametrize("name", list(WRONG_SHAPES))
def test_closed_form_callable_of_the_wrong_shape_is_named(name):
    override, call, shape = WRONG_SHAPES[name]
    P = _example3_callables(**{name: override})
    x, y = np.linspace(-1, 1, 4)[:, None], np.linspace(-0.5, 0.5, 4)[:, None]
    with pytest.raises(ValueError) as exc:
        call(P, x, y)
    msg = _one_line(exc)
    assert msg.startswith(f"ClosedFormProblem callable {name!r} returned shape {shape}; expected")


def test_closed_form_callable_returning_text_is_named():
    P = _example3_callables(g=lambda x, y: "abc")
    with pytest.raises(ValueError, match="ClosedFormProblem callable 'g' must return real"):
        P.g(np.zeros((2, 1)), np.zeros((2, 1)))


def test_closed_form_constant_results_are_broadcast_per_replica():
    """What the shape check must keep accepting: results that broadcast to the documented
    shape (a constant gradient) come back with one row per replica, as before."""
    P, E = _example3_callables(), UniBiOExample3(2)
    x, y = np.linspace(-1, 1, 4)[:, None], np.linspace(-0.5, 0.5, 4)[:, None]
    assert P.grad_x_f(x, y).shape == (4, 1)
    np.testing.assert_allclose(P.grad_phi(x), E.grad_phi(x), atol=1e-14)
