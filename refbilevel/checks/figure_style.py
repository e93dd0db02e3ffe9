"""The house style every check figure gets after its own ``plot`` (docs/checks.rst, "how to
read a figure"): one rule for all checks instead of a font size per module.

* Legends, titles and axis labels are readable: at least :data:`MIN_LEGEND_PT` (8 pt).
* Reference lines (bounds, claimed rates, thresholds: drawn dashed, dotted or dash-dotted,
  or as ``axhline``/``axvline``) lie over the data (``zorder`` :data:`REFERENCE_ZORDER`,
  above lines and markers at 2 and bands at 1), so a bound is never hidden by the points it
  bounds.
"""

from __future__ import annotations

from typing import Any

MIN_LEGEND_PT = 8.0
REFERENCE_ZORDER = 3.0


def is_reference_line(line: Any) -> bool:
    """A Line2D drawn dashed, dotted or dash-dotted (the checks' convention for bounds and
    claimed rates)."""
    return line.get_linestyle() in ("--", ":", "-.")


def apply_house_style(fig: Any) -> None:
    """Enforce the rules of the module docstring on every axes of ``fig`` (in place)."""
    for ax in fig.axes:
        for line in ax.get_lines():
            if is_reference_line(line) and line.get_zorder() < REFERENCE_ZORDER:
                line.set_zorder(REFERENCE_ZORDER)
        legend = ax.get_legend()
        if legend is not None:
            for text in legend.get_texts():
                text.set_fontsize(max(MIN_LEGEND_PT, text.get_fontsize()))
        for text in (ax.title, ax.xaxis.label, ax.yaxis.label):
            text.set_fontsize(max(MIN_LEGEND_PT, text.get_fontsize()))
    for legend in fig.legends:
        for text in legend.get_texts():
            text.set_fontsize(max(MIN_LEGEND_PT, text.get_fontsize()))
