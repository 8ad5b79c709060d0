"""A self-contained HTML report: videos (WebM/VP9) and images embedded as data URIs, plots as
inline SVG, tables as HTML. Used by ``diffusion4d demo``; nothing here computes results, it only
lays out what the stages wrote."""

from __future__ import annotations

import base64
import html
import math
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em} td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
.row{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}
figure{margin:0;text-align:center;font-size:.85em;max-width:260px} figure video,figure img{width:192px;image-rendering:pixelated;border:1px solid #ddd;background:#fff}
figure.sheet{max-width:none} figure.sheet img{width:auto;max-width:100%}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.5em 1em;margin:.8em 0}
.muted{color:#777;font-size:.9em} svg{background:#fff;border:1px solid #ddd}
"""


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def video_tag(frames: np.ndarray, fps: float = 8.0, caption: str = "") -> str:
    """``<figure>`` with a looping, autoplaying WebM of ``frames`` [N, H, W, 3|4] embedded."""
    from diffusion4d.io.video import write_video

    with tempfile.TemporaryDirectory() as tmp:
        path = write_video(Path(tmp) / "v.webm", frames, fps=fps)
        uri = _data_uri(path.read_bytes(), "video/webm")
    return (
        f'<figure><video src="{uri}" autoplay loop muted playsinline></video>'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def image_tag(image: np.ndarray, caption: str = "", sheet: bool = False) -> str:
    """``<figure>`` with a PNG of ``image`` [H, W, 3|4] uint8 embedded; ``sheet``: shown at its own size (up to the
    page width) instead of the videos' thumbnail width, for :func:`frame_sheet` images."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image)).save(buf, format="PNG")
    uri = _data_uri(buf.getvalue(), "image/png")
    cls = ' class="sheet"' if sheet else ""
    return f'<figure{cls}><img src="{uri}" alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}</figcaption></figure>'


def frame_sheet(rows: Sequence[np.ndarray], scale: int = 1, gap: int = 4) -> np.ndarray:
    """A contact sheet: the frames ``[F, H, W, 3]`` uint8 of each row side by side, rows stacked, every frame
    enlarged ``scale`` x (nearest neighbour) and separated by ``gap`` white pixels -> ``[H', W', 3]`` uint8.
    Every frame must have the same ``H, W``; a shorter row leaves white at its end. A screenshot shows one
    frame of a video; the sheet shows all of them at once."""
    if not rows:
        raise ValueError("frame_sheet needs at least one row")
    shapes = {tuple(r.shape[1:]) for r in rows}
    if len(shapes) != 1 or any(r.ndim != 4 or r.shape[-1] != 3 for r in rows):
        raise ValueError(f"every row must be [F, H, W, 3] with one H, W; got {[tuple(r.shape) for r in rows]}")
    h, w = rows[0].shape[1] * scale, rows[0].shape[2] * scale
    cols = max(len(r) for r in rows)
    sheet = np.full((len(rows) * h + (len(rows) - 1) * gap, cols * w + (cols - 1) * gap, 3), 255, dtype=np.uint8)
    for i, frames in enumerate(rows):
        for j, frame in enumerate(frames):
            big = np.asarray(frame, dtype=np.uint8).repeat(scale, axis=0).repeat(scale, axis=1)
            sheet[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = big
    return sheet


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def fmt(v: object) -> str:
        if isinstance(v, float):
            return "n/a" if math.isnan(v) else f"{v:.4g}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def line_plot(
    series: Dict[str, Tuple[Sequence[float], Sequence[float]]],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    width: int = 520,
    height: int = 280,
    markers: bool = False,
    log_y: bool = False,
) -> str:
    """An inline SVG line plot; ``series`` maps a label to (xs, ys)."""
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
    pts = [(float(x), float(y)) for xs, ys in series.values() for x, y in zip(xs, ys) if math.isfinite(float(y))]
    if not pts:
        return f'<p class="muted">{html.escape(title)}: no data</p>'

    def ty(y: float) -> float:
        return math.log10(max(y, 1e-12)) if log_y else y

    xmin, xmax = min(p[0] for p in pts), max(p[0] for p in pts)
    ymin, ymax = min(ty(p[1]) for p in pts), max(ty(p[1]) for p in pts)
    if xmax == xmin:
        xmax = xmin + 1
    if ymax == ymin:
        ymax = ymin + 1
    left, right, top, bottom = 60, 15, 28, 40
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - xmin) / (xmax - xmin) * pw

    def sy(y: float) -> float:
        return top + (1 - (ty(y) - ymin) / (ymax - ymin)) * ph

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">']
    parts.append(f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13">{html.escape(title)}</text>')
    parts.append(f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#444"/>')
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#444"/>')
    for k in range(5):
        yv = ymin + (ymax - ymin) * k / 4
        label = f"{10 ** yv:.3g}" if log_y else f"{yv:.3g}"
        parts.append(f'<text x="{left - 5}" y="{sy(10 ** yv if log_y else yv) + 4:.1f}" text-anchor="end" font-size="10">{label}</text>')
        xv = xmin + (xmax - xmin) * k / 4
        parts.append(f'<text x="{sx(xv):.1f}" y="{top + ph + 14}" text-anchor="middle" font-size="10">{xv:.3g}</text>')
    parts.append(f'<text x="{left + pw / 2}" y="{height - 5}" text-anchor="middle" font-size="11">{html.escape(xlabel)}</text>')
    parts.append(
        f'<text x="12" y="{top + ph / 2}" text-anchor="middle" font-size="11" transform="rotate(-90 12 {top + ph / 2})">{html.escape(ylabel)}</text>'
    )
    for i, (label, (xs, ys)) in enumerate(series.items()):
        colour = colours[i % len(colours)]
        coords = [(sx(float(x)), sy(float(y))) for x, y in zip(xs, ys) if math.isfinite(float(y))]
        if not coords:
            continue
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{path}"/>')
        if markers:
            parts.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}"/>' for x, y in coords)
        parts.append(f'<text x="{left + pw - 4}" y="{top + 14 + 14 * i}" text-anchor="end" font-size="11" fill="{colour}">{html.escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


class Report:
    """Collects sections and writes one self-contained HTML file."""

    def __init__(self, title: str, subtitle: str = ""):
        self.title = title
        self.subtitle = subtitle
        self.sections: List[Tuple[str, str]] = []

    def add(self, heading: str, body_html: str) -> None:
        self.sections.append((heading, body_html))

    def render(self) -> str:
        body = "".join(f"<h2>{html.escape(h)}</h2>\n{b}\n" for h, b in self.sections)
        sub = f'<p class="muted">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        return (
            "<!DOCTYPE html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>"
            f"<body><h1>{html.escape(self.title)}</h1>{sub}\n{body}</body></html>"
        )

    def write(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(self.render())
        tmp.replace(path)
        return path


def note(text: str) -> str:
    return f'<div class="note">{html.escape(text)}</div>'


def paragraph(text: str, muted: bool = False) -> str:
    cls = ' class="muted"' if muted else ""
    return f"<p{cls}>{html.escape(text)}</p>"


def row(items: Sequence[str]) -> str:
    return '<div class="row">' + "".join(items) + "</div>"


def markdown_table_to_html(text: str) -> Optional[str]:
    """Convert a GitHub-style Markdown table (as eval writes) into an HTML table."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip().startswith("|")]
    if len(lines) < 2:
        return None
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    header, body = cells[0], [c for c in cells[2:]]
    return table(header, body)
