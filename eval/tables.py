"""Table writers: Markdown, CSV, LaTeX (booktabs) and JSON.

Files written into the output folder (one per requested format):

* ``metrics.md``: summary table (mean +- std per method, best value in bold), per-asset table,
  motion-control table, notes (every ``n/a`` with its reason).
* ``summary.csv``, ``per_asset.csv``, ``motion.csv``: full precision, empty cell for n/a.
* ``metrics.tex``: the summary as a booktabs ``tabular`` (+ notes as comments), ready for ``\\input``.
* ``metrics.json``: :meth:`EvalResult.to_json` (inf written as the string "inf").
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from diffusion4d.eval.results import METRIC_INFO, EvalResult, Summary

FORMATS = ("md", "csv", "tex", "json")


def fmt(value: Optional[float], decimals: int) -> str:
    if value is None:
        return "n/a"
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{decimals}f}"


def _full(value: Optional[float]) -> str:
    if value is None:
        return ""
    return fmt(value, 0) if not math.isfinite(value) else format(float(value), ".6g")


def _best(result: EvalResult, metric: str) -> Optional[str]:
    """The method with the best mean for ``metric`` (None with fewer than 2 scored methods or a tie)."""
    scored = [(m, s.mean) for m in result.methods if (s := result.summary.get(m, {}).get(metric)) is not None and not math.isnan(s.mean)]
    if len(scored) < 2:
        return None
    sign = 1.0 if METRIC_INFO[metric].higher_is_better else -1.0
    best = max(scored, key=lambda kv: sign * kv[1])
    if sum(1 for _, v in scored if v == best[1]) > 1:
        return None
    return best[0]


def _arrow(metric: str, latex: bool = False) -> str:
    up = METRIC_INFO[metric].higher_is_better
    if latex:
        return r"$\uparrow$" if up else r"$\downarrow$"
    return "↑" if up else "↓"


def _summary_cell(s: Optional[Summary], metric: str, plus_minus: str) -> str:
    d = METRIC_INFO[metric].decimals
    if s is None:
        return "n/a"
    if s.std is None or not math.isfinite(s.std):
        return fmt(s.mean, d)
    return f"{fmt(s.mean, d)}{plus_minus}{fmt(s.std, d)}"


def _md_table(header: Sequence[str], rows: List[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def to_markdown(result: EvalResult) -> str:
    parts = [f"# Evaluation: {result.task}", "", f"Reference: `{result.reference}`. Values are mean ± std over assets.", ""]
    header = ["Method"] + [f"{METRIC_INFO[k].label} {_arrow(k)}" for k in result.metrics]
    rows = []
    for method in result.methods:
        row = [method]
        for metric in result.metrics:
            cell = _summary_cell(result.summary.get(method, {}).get(metric), metric, " ± ")
            row.append(f"**{cell}**" if _best(result, metric) == method else cell)
        rows.append(row)
    parts += ["## Summary", "", _md_table(header, rows), ""]
    asset_metrics = [k for k in result.metrics if METRIC_INFO[k].per_asset]
    if asset_metrics:
        header = ["Method", "Asset"] + [METRIC_INFO[k].label for k in asset_metrics]
        rows = []
        for method in result.methods:
            for uid, values in sorted(result.per_asset.get(method, {}).items()):
                rows.append([method, uid] + [fmt(values.get(k), METRIC_INFO[k].decimals) for k in asset_metrics])
        parts += ["## Per asset", "", _md_table(header, rows) if rows else "(no assets)", ""]
    if "motion" in result.metrics:
        rows = []
        for method in result.methods:
            for g in result.motion_groups.get(method, []):
                pairs = ", ".join(f"{r:g}→{fmt(m, 4)}" for r, m in zip(g["requested"], g["measured"]))
                rho = fmt(g["spearman"], 3) if g["spearman"] is not None else f"n/a ({g['reason']})"
                rows.append([method, g["prompt"] or "(empty)", str(g["seed"]), pairs, rho])
        parts += ["## Motion control (requested → measured deviation from m = 0)", ""]
        parts += [_md_table(["Method", "Prompt", "Seed", "Requested → measured", "Spearman rho"], rows) if rows else "(no motion groups)", ""]
    if result.notes:
        parts += ["## Notes", ""] + [f"- {n}" for n in result.notes] + [""]
    return "\n".join(parts)


def _csv(rows: List[List[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def to_csv(result: EvalResult) -> Dict[str, str]:
    """``{file name: content}`` for summary.csv, per_asset.csv and motion.csv."""
    header = ["method"]
    for k in result.metrics:
        header += [k, f"{k}_std", f"{k}_n"]
    rows = [header]
    for method in result.methods:
        row = [method]
        for k in result.metrics:
            s = result.summary.get(method, {}).get(k)
            row += [_full(s.mean), _full(s.std), str(s.n)] if s is not None else ["", "", "0"]
        rows.append(row)
    files = {"summary.csv": _csv(rows)}
    asset_metrics = [k for k in result.metrics if METRIC_INFO[k].per_asset]
    rows = [["method", "uid"] + asset_metrics]
    for method in result.methods:
        for uid, values in sorted(result.per_asset.get(method, {}).items()):
            rows.append([method, uid] + [_full(values.get(k)) for k in asset_metrics])
    files["per_asset.csv"] = _csv(rows)
    rows = [["method", "prompt", "seed", "sample", "requested", "measured", "spearman"]]
    for method in result.methods:
        for g in result.motion_groups.get(method, []):
            for name, r, m in zip(g["samples"], g["requested"], g["measured"]):
                rows.append([method, g["prompt"], "" if g["seed"] is None else str(g["seed"]), name, _full(r), _full(m), _full(g["spearman"])])
    files["motion.csv"] = _csv(rows)
    return files


_TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex_escape(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(c, c) for c in text)


def to_latex(result: EvalResult) -> str:
    cols = "l" + "c" * len(result.metrics)
    header = " & ".join(["Method"] + [f"{tex_escape(METRIC_INFO[k].label)} {_arrow(k, latex=True)}" for k in result.metrics])
    lines = [
        f"% {tex_escape(result.task)}: mean $\\pm$ std over assets; reference: {tex_escape(result.reference)}",
        f"\\begin{{tabular}}{{{cols}}}",
        "\\toprule",
        header + " \\\\",
        "\\midrule",
    ]
    for method in result.methods:
        cells = [tex_escape(method)]
        for k in result.metrics:
            s = result.summary.get(method, {}).get(k)
            d = METRIC_INFO[k].decimals
            if s is None:
                cell = "n/a"
            else:
                mean = "$\\infty$" if math.isinf(s.mean) and s.mean > 0 else fmt(s.mean, d)
                cell = f"\\textbf{{{mean}}}" if _best(result, k) == method else mean
                if s.std is not None and math.isfinite(s.std):
                    cell += f" {{\\scriptsize $\\pm${fmt(s.std, d)}}}"
            cells.append(cell)
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}"]
    lines += [f"% note: {tex_escape(n)}" for n in result.notes]
    return "\n".join(lines) + "\n"


def to_json_text(result: EvalResult) -> str:
    return json.dumps(result.to_json(), indent=2, sort_keys=False) + "\n"


def write_tables(result: EvalResult, output: Path, formats: Sequence[str] = FORMATS) -> List[Path]:
    """Write the requested formats into ``output`` (created); returns the files written."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown table format(s) {unknown}; valid: {', '.join(FORMATS)}")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    contents: Dict[str, str] = {}
    if "md" in formats:
        contents["metrics.md"] = to_markdown(result)
    if "csv" in formats:
        contents.update(to_csv(result))
    if "tex" in formats:
        contents["metrics.tex"] = to_latex(result)
    if "json" in formats:
        contents["metrics.json"] = to_json_text(result)
    written = []
    for name, text in contents.items():
        path = output / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
        written.append(path)
    return written
