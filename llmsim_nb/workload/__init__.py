"""Workloads: requests, traces, trace files and synthetic generators.

Public API
----------
Request, Trace, TraceError
    The data model (:mod:`.request`, :mod:`.trace`).
load_trace, save_trace
    Trace files: seed TSV/CSV/JSONL and the Azure LLM trace (:mod:`.loaders`).
poisson_arrivals, gamma_arrivals
    Arrival processes (:mod:`.arrivals`).
Fixed, Uniform, Empirical, sharegpt_like, alpaca_like
    Length distributions (:mod:`.lengths`).
synthetic_trace, default_trace
    Whole workloads (:mod:`.generators`).
"""

from .arrivals import gamma_arrivals, poisson_arrivals
from .generators import default_trace, synthetic_trace
from .lengths import Empirical, Fixed, Uniform, alpaca_like, sharegpt_like
from .loaders import load_trace, save_trace
from .request import Request
from .trace import Trace, TraceError

__all__ = [
    "Request",
    "Trace",
    "TraceError",
    "load_trace",
    "save_trace",
    "poisson_arrivals",
    "gamma_arrivals",
    "Fixed",
    "Uniform",
    "Empirical",
    "sharegpt_like",
    "alpaca_like",
    "synthetic_trace",
    "default_trace",
]
