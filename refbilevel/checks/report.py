"""The report of a ``refbilevel check`` run: ``report.md`` and a self-contained ``report.html``
(figures embedded as base64 PNG) in the output folder (docs/checks.rst).

Per claim: the verdict (claim held, negative control rejected), the measured values with
their intervals, the bound, the control's values, the figure, and where the verdict came
from (backend actually used, seed, mode, git commit and dirty flag). The values are read
from the verdict's JSON fields in the order the check wrote them, a value with its interval
(a ``ci`` / ``ci999`` entry) on one line, up to :data:`MAX_LINES` per column; the JSON file
beside the report holds them all.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from refbilevel.checks.verdict import Verdict

MAX_LINES = 12
#: keys naming a row of a list of records (``per_p[p=2]`` reads better than ``per_p[0]``)
ROW_KEYS = ("p", "problem", "name", "algorithm", "case", "kind", "estimator", "family", "d",
            "eps", "label")
#: metadata, not values: left out of the columns (the JSON keeps them)
SKIP_KEYS = ("uncertainty", "description", "method", "level")
#: keys holding the point estimate next to a ``ci``
ESTIMATE_KEYS = ("estimate", "mean", "value", "rate", "slope", "ratio")


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return str(v)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_interval(key: str, v: Any) -> bool:
    return ("ci" in key.lower().split("_") or key.lower().startswith("ci")) and \
        isinstance(v, list) and len(v) == 2 and all(_is_number(x) for x in v)


def _row_name(item: dict, i: int) -> str:
    for k in ROW_KEYS:
        if k in item and isinstance(item[k], (str, int, float)):
            return f"{k}={_fmt(item[k])}"
    return str(i)


def leaves(obj: Any, path: str = "") -> Iterator[tuple[str, str, bool]]:
    """(path, rendered value, has an interval) for the values of a verdict field."""
    if isinstance(obj, dict):
        if "ci" in obj and _is_interval("ci", obj["ci"]):
            est = next((obj[k] for k in ESTIMATE_KEYS if k in obj), None)
            lo, hi = obj["ci"]
            level = f" ({obj['level']:.1%})" if _is_number(obj.get("level")) else ""
            head = f"{_fmt(est)} " if est is not None else ""
            if _is_number(obj.get("count")) and _is_number(obj.get("n")):
                head = f"{_fmt(obj['count'])}/{_fmt(obj['n'])} = {head}"
            yield path, f"{head}[{_fmt(lo)}, {_fmt(hi)}]{level}", True
            return
        for k, v in obj.items():
            if k in SKIP_KEYS:
                continue
            sub = f"{path}.{k}" if path else str(k)
            if _is_interval(str(k), v):  # JSON-like keys may be ints (e.g. p values)
                yield sub, f"[{_fmt(v[0])}, {_fmt(v[1])}]", True
            else:
                yield from leaves(v, sub)
    elif isinstance(obj, list):
        if obj and all(isinstance(x, dict) for x in obj):
            for i, item in enumerate(obj):
                name = _row_name(item, i)
                key = name.split("=", 1)[0]
                # the key that names the row is in its label: not repeated as a value
                yield from leaves({k: v for k, v in item.items() if k != key},
                                  f"{path}[{name}]")
        elif obj and all(_is_number(x) for x in obj):
            # a list of numbers: shown in full when short, else by its range
            if len(obj) <= 4:
                yield path, "[" + ", ".join(_fmt(x) for x in obj) + "]", False
            else:
                yield path, f"{len(obj)} values in [{_fmt(min(obj))}, {_fmt(max(obj))}]", False
        elif obj and len(obj) <= 4 and all(isinstance(x, (str, bool)) for x in obj):
            yield path, ", ".join(_fmt(x) for x in obj), False
    elif _is_number(obj) or isinstance(obj, (str, bool)):
        text = _fmt(obj)
        yield path, text if len(text) <= 160 else text[:157] + "...", False


def column(obj: Any) -> tuple[list[tuple[str, str]], int]:
    """Up to MAX_LINES (path, value) lines of a verdict field and how many were left out."""
    items = list(leaves(obj))
    shown = [(p, v) for p, v, _ in items[:MAX_LINES]]
    return shown, max(0, len(items) - MAX_LINES)


def status(v: Verdict) -> str:
    """PASS, PASS (counterexample) for a pre-registered probe that failed, FAIL or ERROR."""
    outcome = v.outcome or v.outcome_of()
    return {"verified": "PASS", "counterexample": "PASS (counterexample)",
            "error": "ERROR"}.get(outcome, "FAIL")


def evidence_text(v: Verdict) -> str:
    """What kind of evidence each part of the check gives (docs/checks.rst, "Evidence")."""
    parts = []
    for e in v.evidence:
        fpr = f", false-positive rate <= {e['fpr']:.1g}" if e.get("fpr") is not None else ""
        note = f" ({e['note']})" if e.get("note") else ""
        parts.append(f"{e['part']}: {e['kind']}{fpr}{note}")
    return "; ".join(parts) or "not stated"


def counterexample_text(v: Verdict) -> str | None:
    """The witness of a pre-registered counterexample, or None."""
    if (v.outcome or v.outcome_of()) != "counterexample":
        return None
    import json

    from refbilevel.checks.verdict import jsonable

    witness = json.dumps(jsonable(v.counterexample), allow_nan=False)
    if len(witness) > 400:
        witness = witness[:400] + f" … (the whole witness in {v.id}.json)"
    return (f"Counterexample to the pre-registered statement \"{v.counterexample_to}\": "
            f"witness {witness}")


def provenance(v: Verdict) -> str:
    commit = ("not a git checkout" if v.git_commit is None
              else f"{v.git_commit[:12]}{' (dirty)' if v.git_dirty else ''}")
    backend = v.backend + (f" — {v.backend_note}" if v.backend_note else "")
    return (f"backend {backend}; seed {v.seed}; mode {v.mode}; {v.elapsed_s:.1f} s; "
            f"commit {commit}")


def summary_table(verdicts: list[Verdict], *, links: bool = False) -> str:
    """The one-line-per-check Markdown table (``links``: ids link to their sections)."""
    rows = ["| id | claim held | control rejected | verdict | backend | time (s) |",
            "|---|---|---|---|---|---|"]
    for v in verdicts:
        name = f"[{v.id}](#{v.id.lower()})" if links else v.id
        rows.append(f"| {name} | {'yes' if v.passed else 'NO'} | "
                    f"{'yes' if v.control_rejected else 'NO'} | {status(v)} | "
                    f"{v.backend}{' (!)' if v.backend_note else ''} | {v.elapsed_s:.1f} |")
    return "\n".join(rows)


def _md_lines(lines: list[tuple[str, str]], more: int, name: str) -> list[str]:
    out = [f"- `{p}` = {val}" for p, val in lines] or ["- (none)"]
    if more:
        out.append(f"- … {more} more in {name}")
    return out


def markdown(verdicts: list[Verdict], mode: str) -> str:
    lines = [f"# refbilevel theory checks ({mode})", ""]
    if verdicts:
        lines += [f"Source: {provenance(verdicts[0]).split('; commit ')[1]}", ""]
    lines += [summary_table(verdicts, links=True), ""]
    for v in verdicts:
        lines += [f"## {v.id}", "", f"**{v.claim}** — {status(v)}", "",
                  f"Source: {v.source}", "",
                  f"Claim held: **{'yes' if v.passed else 'NO'}**; negative control "
                  f"rejected: **{'yes' if v.control_rejected else 'NO'}**", "",
                  f"Evidence: {evidence_text(v)}", "", f"Provenance: {provenance(v)}", ""]
        witness = counterexample_text(v)
        if witness:
            lines += [f"**{witness}**", ""]
        for title, obj in (("Measured (with intervals)", v.measured), ("Bound", v.bound),
                           ("Control", v.control)):
            shown, more = column(obj)
            lines += [f"**{title}**", ""]
            if title == "Control" and v.control.get("description"):
                lines += [f"{v.control['description']}", ""]
            lines += _md_lines(shown, more, f"{v.id}.json") + [""]
        if v.figure:
            lines += [f"![{v.id}]({v.figure})", ""]
        if v.notes:
            lines += ["Notes:", ""] + [f"- {n}" for n in v.notes] + [""]
        if v.error:
            lines += ["```", v.error, "```", ""]
        lines += [f"Details: [{v.id}.json]({v.id}.json)", ""]
    return "\n".join(lines)


CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;
font-size:14px}.PASS{color:#176117;font-weight:bold}.FAIL,.ERROR{color:#a11;font-weight:bold}
.cols{display:grid;grid-template-columns:1fr 1fr 1fr;gap:1em}.cols ul{padding-left:1.2em;
font-size:13px}code{font-size:12px}img{max-width:100%}.prov{color:#555;font-size:13px}
pre{background:#f6f6f6;padding:.5em;overflow-x:auto;font-size:12px}"""


def _html_list(lines: list[tuple[str, str]], more: int, name: str) -> str:
    items = [f"<li><code>{html.escape(p)}</code> = {html.escape(val)}</li>" for p, val in lines]
    if not items:
        items = ["<li>(none)</li>"]
    if more:
        items.append(f"<li>… {more} more in {html.escape(name)}</li>")
    return "<ul>" + "".join(items) + "</ul>"


def html_report(verdicts: list[Verdict], mode: str, out: Path) -> str:
    e = html.escape
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>refbilevel checks "
             f"({e(mode)})</title><style>{CSS}</style></head><body>",
             f"<h1>refbilevel theory checks ({e(mode)})</h1>"]
    if verdicts:
        parts.append(f"<p class='prov'>Source: "
                     f"{e(provenance(verdicts[0]).split('; commit ')[1])}</p>")
    parts.append("<table><tr><th>id</th><th>claim</th><th>claim held</th><th>control "
                 "rejected</th><th>verdict</th><th>backend</th><th>time (s)</th></tr>")
    for v in verdicts:
        parts.append(f"<tr><td><a href='#{e(v.id)}'>{e(v.id)}</a></td><td>{e(v.claim)}</td>"
                     f"<td>{'yes' if v.passed else 'NO'}</td>"
                     f"<td>{'yes' if v.control_rejected else 'NO'}</td>"
                     f"<td class='{status(v)}'>{status(v)}</td><td>{e(v.backend)}"
                     f"{' (!)' if v.backend_note else ''}</td><td>{v.elapsed_s:.1f}</td></tr>")
    parts.append("</table>")
    for v in verdicts:
        parts += [f"<h2 id='{e(v.id)}'>{e(v.id)}: {e(v.claim)} "
                  f"<span class='{status(v)}'>{status(v)}</span></h2>",
                  f"<p>Source: {e(v.source)}<br>Claim held: <b>{'yes' if v.passed else 'NO'}"
                  f"</b>; negative control rejected: <b>{'yes' if v.control_rejected else 'NO'}"
                  f"</b><br>Evidence: {e(evidence_text(v))}</p>"]
        witness = counterexample_text(v)
        if witness:
            parts.append(f"<p><b>{e(witness)}</b></p>")
        parts.append(f"<p class='prov'>{e(provenance(v))}</p><div class='cols'>")
        for title, obj in (("Measured (with intervals)", v.measured), ("Bound", v.bound),
                           ("Control", v.control)):
            shown, more = column(obj)
            desc = (f"<p>{e(str(v.control['description']))}</p>"
                    if title == "Control" and v.control.get("description") else "")
            parts.append(f"<div><h3>{title}</h3>{desc}{_html_list(shown, more, f'{v.id}.json')}"
                         "</div>")
        parts.append("</div>")
        png = out / v.figure if v.figure else None
        if png is not None and png.exists():
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            parts.append(f"<img alt='{e(v.id)} figure' src='data:image/png;base64,{data}'>")
        if v.notes:
            parts.append("<p>Notes:</p><ul>" + "".join(f"<li>{e(n)}</li>" for n in v.notes)
                         + "</ul>")
        unc = v.measured.get("uncertainty") if isinstance(v.measured, dict) else None
        if isinstance(unc, dict) and unc:
            parts.append("<details><summary>uncertainty of each value</summary><ul>"
                         + "".join(f"<li><code>{e(str(k))}</code>: {e(str(u))}</li>"
                                   for k, u in unc.items()) + "</ul></details>")
        if v.error:
            parts.append(f"<pre>{e(v.error)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(verdicts: list[Verdict], out: Path, mode: str) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` under ``out``; returns both paths."""
    md = out / "report.md"
    md.write_text(markdown(verdicts, mode))
    page = out / "report.html"
    page.write_text(html_report(verdicts, mode, out))
    return md, page
