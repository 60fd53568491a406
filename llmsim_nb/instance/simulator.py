"""Simulator: one serving instance and a request trace given up front.

The original's whole run: every request of the trace is submitted at once
(each at its arrival time), then :meth:`~.instance.Instance.run` repeats
:meth:`~.instance.Instance.step` until every request has finished. The trace
is checked against ``max_model_len`` before anything runs.
"""

from __future__ import annotations

from pathlib import PurePath

from ..config import SimConfig
from ..engines.base import Engine, check_engine_argument
from ..system.builder import build_instance
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
        _check_arguments(config, trace, engine, pim_mapping)
        config = SimConfig() if config is None else config
        if pim_mapping is not None and config.system.pim_type == "none":
            raise ValueError("Simulator(pim_mapping=...) maps operators between NPU and PIM, "
                             "but pim_type='none'; set pim_type 'local' or 'pool', or leave "
                             "pim_mapping out")
        if trace is None:
            trace = load_trace(config.dataset) if config.dataset else default_trace()
        longest = int((trace.num_prompt_tokens + trace.num_output_tokens).max(initial=0))
        super().__init__(build_instance(config, engine=engine, pim_mapping=pim_mapping,
                                        longest_request=longest))
        self.trace = trace
        self._trace_source = getattr(trace, "source", "")
        self.check_lengths(trace.num_prompt_tokens, trace.num_output_tokens)
        self._submit_arrays(trace.arrival_at, trace.num_prompt_tokens, trace.num_output_tokens)


def _check_arguments(config, trace, engine, pim_mapping) -> None:
    """TypeErrors for arguments of the wrong kind, saying what is expected."""
    if config is not None and not isinstance(config, SimConfig):
        hint = {str: f" (for a model by name: SimConfig.from_flags(model_name={config!r}))",
                dict: " (for flags: SimConfig.from_flags(**flags))"}
        raise TypeError(f"Simulator(config=...) must be a SimConfig or None, got "
                        f"{type(config).__name__}"
                        f"{next((h for t, h in hint.items() if isinstance(config, t)), '')}")
    if trace is not None and not isinstance(trace, Trace):
        hint = (" (a trace file: load_trace(path))" if isinstance(trace, (str, PurePath))
                else "; build one with Trace(arrival_at, num_prompt_tokens, "
                     "num_output_tokens), Trace.from_requests(requests) or load_trace(path)")
        raise TypeError(f"Simulator(trace=...) must be a Trace or None, got "
                        f"{type(trace).__name__}{hint}")
    check_engine_argument(engine, "Simulator")
    if pim_mapping is not None and not callable(pim_mapping):
        hint = (f" (a named policy is the pim_mapping flag: SimConfig.from_flags("
                f"pim_mapping={pim_mapping!r}, ...))" if isinstance(pim_mapping, str) else "")
        raise TypeError(f"Simulator(pim_mapping=...) must be a callable policy(op) -> bool "
                        f"array (True = PIM) or None, got {type(pim_mapping).__name__}{hint}")


__all__ = ["Simulator", "SimulationFinished"]
