"""Simulator: one serving instance and a request trace given up front.

The original's whole run: every request of the trace is submitted at once
(each at its arrival time), then :meth:`~.instance.Instance.run` repeats
:meth:`~.instance.Instance.step` until every request has finished. The trace
is checked against ``max_model_len`` before anything runs.
"""

from __future__ import annotations

from pathlib import PurePath

from ..config import SimConfig
from ..engines.base import Engine
from ..system.builder import build_instance, check_build_arguments
from ..workload import Trace, default_trace, load_trace
from .instance import Instance, SimulationFinished


class Simulator(Instance):
    """Simulates serving a request trace, one iteration per :meth:`step`.

    Parameters
    ----------
    config : SimConfig, optional
        Defaults to ``SimConfig()``: GPT3-6.7B on the paper's 128x128 NPU.
    trace : Trace, optional
        Requests to serve. Defaults to ``load_trace(config.dataset)`` or, with
        no dataset, the packaged 100-request ShareGPT-like trace.
    engine : Engine, optional
        A ready engine to use instead of the ``config.hardware`` preset's.
    pim_mapping : callable, optional
        With ``pim_type`` local or pool, an operator mapping policy
        (``policy(op) -> bool array``, True = PIM; :mod:`llmsim_nb.engines.mapping`)
        instead of ``config.system.pim_mapping``.

    Attributes
    ----------
    trace : Trace
    now, scheduler, engine, kv_cache, last_graph, last_schedule, parts
        As for :class:`~.instance.Instance`.
    """

    def __init__(self, config: SimConfig | None = None, trace: Trace | None = None, *,
                 engine: Engine | None = None, pim_mapping=None) -> None:
        _check_trace(trace)
        check_build_arguments(config, engine, pim_mapping, 0, "Simulator")
        config = SimConfig() if config is None else config
        if trace is None:
            trace = load_trace(config.dataset) if config.dataset else default_trace()
        longest = int((trace.num_prompt_tokens + trace.num_output_tokens).max(initial=0))
        super().__init__(build_instance(config, engine=engine, pim_mapping=pim_mapping,
                                        longest_request=longest))
        self.trace = trace
        self._trace_source = getattr(trace, "source", "")
        self.check_lengths(trace.num_prompt_tokens, trace.num_output_tokens)
        self._submit_arrays(trace.arrival_at, trace.num_prompt_tokens, trace.num_output_tokens,
                            trace.content, trace.priority)


def _check_trace(trace) -> None:
    """A TypeError for a trace of the wrong kind, saying what is expected."""
    if trace is not None and not isinstance(trace, Trace):
        hint = (" (a trace file: load_trace(path))" if isinstance(trace, (str, PurePath))
                else "; build one with Trace(arrival_at, num_prompt_tokens, "
                     "num_output_tokens), Trace.from_requests(requests) or load_trace(path)")
        raise TypeError(f"Simulator(trace=...) must be a Trace or None, got "
                        f"{type(trace).__name__}{hint}")


__all__ = ["Simulator", "SimulationFinished"]
