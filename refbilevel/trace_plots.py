"""Curves of algorithm runs (``Trace.plot``, ``refbilevel plot``; docs/design.rst, "trace").

One figure, two rows (||∇phi(x_t)|| and ||y_t - y*(x_t)||, both from the closed form) by two
columns (against the outer iteration and against the cumulative oracle calls per replica; a
third column against the wall time when every trace recorded it, NumPy runs). Each run is
drawn as the median over its replicas (seeds) with a shaded band from the lowest to the
highest replica; several runs are overlaid in distinct colours. Records after a replica
diverged are NaN and left out of the median; a run whose replicas all diverged ends there.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

METRICS = (("grad_phi_norm", "||∇φ(x_t)||"), ("y_error", "||y_t − y*(x_t)||"))


def _label(trace: Any, i: int, labels: Sequence[str] | None) -> str:
    if labels is not None:
        return labels[i]
    return f"{trace.algorithm} [{trace.backend}], seed {trace.seed}"


def _bands(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(median, lowest, highest) over replicas (axis 1), ignoring NaN (diverged records)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN records stay NaN
        return (np.nanmedian(values, axis=1), np.nanmin(values, axis=1),
                np.nanmax(values, axis=1))


def _calls(trace: Any) -> np.ndarray:
    """Cumulative oracle calls per replica at each record; a run whose oracle counts only
    independent samples (BSGM, docs/sid_bsgm.rst Definition 15) is drawn against those."""
    calls = trace.oracle_calls().astype(float)
    if not calls.any() and "samples" in trace.counts:
        calls = np.asarray(trace.counts["samples"], dtype=float)
    return calls


def plot_traces(traces: Sequence[Any], *, labels: Sequence[str] | None = None,
                fig: Figure | None = None) -> Figure:
    """Draw the runs ``traces`` (:class:`~refbilevel.algorithms.trace.Trace`) on one figure
    (see the module docstring) and return it."""
    import matplotlib.pyplot as plt

    if not traces:
        raise ValueError("traces must hold at least one trace")
    if labels is not None and len(labels) != len(traces):
        raise ValueError(f"labels must name each of the {len(traces)} traces, got "
                         f"{len(labels)}")
    timed = all(getattr(t, "record_time_s", None) is not None for t in traces)
    axes_x = [("iteration", "outer iteration t"),
              ("calls", "oracle calls per replica (BSGM: samples)")]
    if timed:
        axes_x.append(("time", "wall time (s)"))
    if fig is None:
        fig = plt.figure(figsize=(4.2 * len(axes_x), 6.4))
    ax = fig.subplots(len(METRICS), len(axes_x), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, tr in enumerate(traces):
        colour = colours[i % len(colours)]
        xs = {"iteration": np.asarray(tr.iterations, dtype=float),
              "calls": _calls(tr)}
        if timed:
            xs["time"] = np.asarray(tr.record_time_s, dtype=float)
        for r, (metric, _) in enumerate(METRICS):
            med, lo, hi = _bands(np.asarray(getattr(tr, metric), dtype=float))
            for c, (key, _) in enumerate(axes_x):
                a = ax[r, c]
                # log axes cannot show 0 (the first record, iteration 0, before any call)
                keep = (xs[key] > 0) & np.isfinite(med) & (med > 0)
                if not keep.any():
                    continue
                replicas = np.shape(getattr(tr, metric))[1]
                a.plot(xs[key][keep], med[keep], color=colour, lw=1.4,
                       label=f"{_label(tr, i, labels)}, R = {replicas}")
                if replicas > 1:
                    a.fill_between(xs[key][keep], lo[keep], hi[keep], color=colour, alpha=0.2,
                                   lw=0)
    for r, (_, ylabel) in enumerate(METRICS):
        for c, (_, xlabel) in enumerate(axes_x):
            a = ax[r, c]
            if not a.lines:
                a.text(0.5, 0.5, "nothing to draw: the values are 0 or NaN\n(not recorded "
                       "for this run, or no calls counted)", ha="center", va="center",
                       fontsize=8, transform=a.transAxes)
            a.set_xscale("log")
            a.set_yscale("log")
            a.set_xlabel(xlabel, fontsize=9)
            a.set_ylabel(ylabel, fontsize=9)
            a.tick_params(labelsize=8)
            a.grid(True, which="major", alpha=0.3)
    handles, names = ax[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="upper center", ncol=min(3, len(handles)), fontsize=8,
                   frameon=False)
    fig.text(0.01, 0.005, "lines: median over replicas (seeds); bands: lowest to highest "
             "replica; NaN after a divergence left out", fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 0.93))
    return fig


def save_plot(traces: Sequence[Any], path: str, *, labels: Sequence[str] | None = None,
              dpi: int = 120) -> str:
    """:func:`plot_traces` written to ``path`` (any Matplotlib format: .png, .pdf, .svg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plot_traces(traces, labels=labels)
    try:
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)
    return path
