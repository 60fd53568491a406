"""The dashboard's metrics table: headline figures of :func:`~llmsim_nb.results.summarize`.

Pure Python (no widget toolkit): :func:`metric_rows` picks and formats the
figures, :func:`metrics_html` lays them out as a wrapping grid of cells, each
``<div class="llmsim-metric" data-key="KEY">`` holding its label and a
``<b class="llmsim-metric-value">`` (what the browser test reads back).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Metric:
    """One cell: ``summary[key] * scale`` shown in ``units`` with ``digits`` decimals."""

    key: str
    label: str
    units: str
    scale: float = 1.0
    digits: int = 0


#: The table's cells, in order (keys of :func:`~llmsim_nb.results.summarize`).
METRICS = (
    Metric("generation_throughput", "throughput", "tok/s", digits=1),
    Metric("request_throughput", "requests", "req/s", digits=2),
    Metric("ttft_p50", "TTFT p50", "ms", 1e3, 1),
    Metric("ttft_p99", "TTFT p99", "ms", 1e3, 1),
    Metric("tpot_p50", "TPOT p50", "ms", 1e3, 2),
    Metric("tpot_p99", "TPOT p99", "ms", 1e3, 2),
    Metric("kv_usage_peak", "KV peak", "%", 100.0, 1),
    Metric("num_evictions", "evictions", ""),
    Metric("num_preemptions", "preemptions", ""),
    Metric("prefix_hit_rate", "prefix hit rate", "%", 100.0, 1),
)

#: Shown for a figure that is NaN: no finished request yet, or no prefix lookups.
MISSING = "n/a"


def format_metric(metric: Metric, value: float) -> str:
    """``value`` (SI units, as summarize gives it) as the table shows it."""
    value = float(value)
    if math.isnan(value):
        return MISSING
    return f"{value * metric.scale:,.{metric.digits}f}"


def metric_rows(summary: dict) -> list[tuple[str, str, str]]:
    """``(key, label with units, formatted value)`` of every :data:`METRICS` cell."""
    return [(m.key, m.label + (f" [{m.units}]" if m.units else ""),
             format_metric(m, summary[m.key])) for m in METRICS]


def metrics_html(summary: dict | None) -> str:
    """The table as HTML (a grid that wraps at narrow widths); an empty note without
    a summary (no simulator)."""
    if summary is None:
        return '<div class="llmsim-metrics-empty">no metrics (no simulator)</div>'
    cells = "".join(
        f'<div class="llmsim-metric" data-key="{key}" style="padding:2px 6px;'
        f'border:1px solid #ddd;border-radius:3px"><div style="color:#555;font-size:11px">'
        f'{html.escape(label)}</div><b class="llmsim-metric-value">{html.escape(text)}</b>'
        f"</div>" for key, label, text in metric_rows(summary))
    return ('<div class="llmsim-metrics-grid" style="display:grid;gap:4px;'
            'grid-template-columns:repeat(auto-fill,minmax(118px,1fr))">' + cells + "</div>")


__all__ = ["METRICS", "MISSING", "Metric", "format_metric", "metric_rows", "metrics_html"]
