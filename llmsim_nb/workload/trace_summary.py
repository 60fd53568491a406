"""Descriptive statistics of a trace (the body of :meth:`.trace.Trace.summary`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .trace import Trace


def trace_summary(trace: Trace) -> dict[str, float | int | str]:
    """Return the statistics :meth:`.trace.Trace.summary` documents.

    Parameters
    ----------
    trace : Trace

    Returns
    -------
    dict
    """
    n = len(trace)
    duration = float(trace.arrival_at[-1] - trace.arrival_at[0])
    if duration > 0.0:
        rate = (n - 1) / duration
    else:
        rate = math.inf if n > 1 else math.nan
    out: dict[str, float | int | str] = {
        "source": trace.source,
        "num_requests": n,
        "duration_s": duration,
        "mean_rate_per_s": rate,
        "total_prompt_tokens": int(trace.num_prompt_tokens.sum()),
        "total_output_tokens": int(trace.num_output_tokens.sum()),
    }
    for label, col in (("prompt_tokens", trace.num_prompt_tokens),
                       ("output_tokens", trace.num_output_tokens)):
        p50, p90, p99 = np.percentile(col, [50, 90, 99])
        out[f"{label}_mean"] = float(col.mean())
        out[f"{label}_min"] = int(col.min())
        out[f"{label}_p50"] = float(p50)
        out[f"{label}_p90"] = float(p90)
        out[f"{label}_p99"] = float(p99)
        out[f"{label}_max"] = int(col.max())
    return out
