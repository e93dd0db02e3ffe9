"""Oracle-call counters (docs/design.rst: "the oracle layer is the only place that counts calls";
modelled on scipy.optimize's nfev/ngev/nhev).

Counts are per replica: a call on a batch of R replicas is one call of each replica's
trajectory, which is what the theorems count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

ORACLE_KINDS = (
    "grad_x_f",  # ∇_x F
    "grad_y_f",  # ∇_y F
    "grad_x_g",  # ∇_x G (F2SA, finite-difference JVPs)
    "grad_y_g",  # ∇_y G
    "hvp",  # ∇²_yy G v
    "jvp",  # ∇²_xy G v (and its transpose)
    "gen_hvp",  # generalized Hessian-vector product H v or Hᵀv (UniBiO)
    "f_u",  # generalized derivative F_u (UniBiO)
)


@dataclass
class OracleCounts:
    grad_x_f: int = 0
    grad_y_f: int = 0
    grad_x_g: int = 0
    grad_y_g: int = 0
    hvp: int = 0
    jvp: int = 0
    gen_hvp: int = 0
    f_u: int = 0
    #: independent samples (xi or zeta draws); a same-sample evaluation adds a call, not a sample
    samples: int = 0

    def add(self, kind: str, n: int = 1) -> None:
        if kind not in ORACLE_KINDS and kind != "samples":
            raise ValueError(f"unknown oracle kind {kind!r}; allowed: {', '.join(ORACLE_KINDS)}")
        setattr(self, kind, getattr(self, kind) + n)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def total_calls(self) -> int:
        return sum(getattr(self, k) for k in ORACLE_KINDS)

    def copy(self) -> OracleCounts:
        return OracleCounts(**self.as_dict())

    def __sub__(self, other: OracleCounts) -> OracleCounts:
        return OracleCounts(**{k: v - getattr(other, k) for k, v in self.as_dict().items()})
