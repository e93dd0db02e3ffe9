"""A problem defined outside the package and registered by name: what a user's module passed to
``refbilevel --import`` looks like (tests of the problem registry).

g(x, y) = ½||y||² − s <sin x, y>, f(x, y) = ½||y||²: y* = s sin x, phi = (s²/2)||sin x||²,
∇phi = s² sin x ⊙ cos x (the p = 2 case of the separable family, with f = ½||y||²).
"""

import numpy as np

from refbilevel.problems import register
from refbilevel.problems.constants import Constants
from refbilevel.problems.custom import ClosedFormProblem

NAME = "test-user-sine"


def scaled_sine(d: int = 2, scale: float = 1.0) -> ClosedFormProblem:
    """½||y||² − s<sin x, y> below, ½||y||² above (a user's problem, tests/user_problem.py)."""
    s = float(scale)
    return ClosedFormProblem(
        d_x=d, d_y=d, p=2.0, hessian_independent_of_y=True,
        f=lambda x, y: 0.5 * np.sum(y * y, axis=-1),
        g=lambda x, y: 0.5 * np.sum(y * y, axis=-1) - s * np.sum(np.sin(x) * y, axis=-1),
        grad_x_f=lambda x, y: np.zeros_like(x),
        grad_y_f=lambda x, y: y,
        grad_x_g=lambda x, y: -s * np.cos(x) * y,
        grad_y_g=lambda x, y: y - s * np.sin(x),
        hvp_yy_g=lambda x, y, v: v,
        jvp_xy_g=lambda x, y, v: -s * np.cos(x) * v,
        jvp_yx_g=lambda x, y, w: -s * np.cos(x) * w,
        y_star=lambda x: s * np.sin(x),
        phi=lambda x: 0.5 * s**2 * np.sum(np.sin(x) ** 2, axis=-1),
        grad_phi=lambda x: s**2 * np.sin(x) * np.cos(x),
        # mu = 1 (∇²_yy g = I); ||∇²_xy g|| <= s and it is s-Lipschitz; l_p = 2 l_g1 / mu at
        # p = 2 (UniBiO §3.1); ∇²phi = s² diag(cos 2x): L_phi2 = s², no Hölder term
        constants=Constants(mu=1.0, p=2.0, L_0=1.0, L_1=0.0, l_g1=abs(s), l_g2=abs(s),
                            l_p=2.0 * abs(s), C=1.0, L_H=0.0, l_f1=0.0, l_f2=1.0,
                            L_phi1=0.0, L_phi2=s * s),
    )


register(NAME, scaled_sine)
