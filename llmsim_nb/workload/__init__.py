"""Workloads: requests, traces, trace files and synthetic generators.

Public API
----------
Request, Trace, TraceError
    The data model (:mod:`.request`, :mod:`.trace`).
load_trace, save_trace
    Trace files: seed TSV/CSV/JSONL and the Azure LLM trace (:mod:`.loaders`).
list_packaged_traces
    Names of the traces shipped with the package, which ``load_trace`` also
    accepts (:mod:`.packaged`).
poisson_arrivals, gamma_arrivals
    Arrival processes (:mod:`.arrivals`).
Fixed, Uniform, Empirical, sharegpt_like, alpaca_like
    Length distributions (:mod:`.lengths`).
synthetic_trace, default_trace
    Whole workloads (:mod:`.generators`).
RequestContent, PromptContent
    What prompts and outputs are, for prefix caching (:mod:`.content`).
load_mooncake_trace, load_cc_trace
    Prefix-sharing traces with block hash ids (:mod:`.trace_mooncake`).
shared_prefix_trace
    Groups of prompts sharing a system prompt (:mod:`.shared_prefix`).
Turn, Session, SessionWorkload, multi_turn_sessions
    Closed-loop multi-turn conversations (:mod:`.sessions`).
"""

from .arrivals import gamma_arrivals, poisson_arrivals
from .content import PromptContent, RequestContent
from .generators import default_trace, synthetic_trace
from .lengths import Empirical, Fixed, Uniform, alpaca_like, sharegpt_like
from .loaders import load_trace, save_trace
from .packaged import list_packaged_traces
from .request import Request
from .sessions import Session, SessionWorkload, Turn, multi_turn_sessions
from .shared_prefix import shared_prefix_trace
from .trace import Trace, TraceError
from .trace_mooncake import load_cc_trace, load_mooncake_trace

__all__ = [
    "Request",
    "Trace",
    "TraceError",
    "load_trace",
    "save_trace",
    "list_packaged_traces",
    "poisson_arrivals",
    "gamma_arrivals",
    "Fixed",
    "Uniform",
    "Empirical",
    "sharegpt_like",
    "alpaca_like",
    "synthetic_trace",
    "default_trace",
    "RequestContent",
    "PromptContent",
    "load_mooncake_trace",
    "load_cc_trace",
    "shared_prefix_trace",
    "Turn",
    "Session",
    "SessionWorkload",
    "multi_turn_sessions",
]
