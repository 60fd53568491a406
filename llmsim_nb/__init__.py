"""llmsim_nb: a Jupyter-first simulator of LLM inference serving.

The public API::

    from llmsim_nb import Simulator, SimConfig, load_trace
    sim = Simulator(SimConfig.from_flags(model_name="gpt3-6.7b"))
    ds = sim.step()      # one iteration as an xarray Dataset
    ds = sim.run()       # the whole run as one Dataset

The folders, in data-flow order: ``workload`` (traces) -> ``scheduler``
(batches, paged KV cache) -> ``engines`` (operator timing) -> ``graph``
(execution graphs) -> ``network`` (running them) -> ``results`` (Datasets);
``models`` and ``parallel`` describe what is computed and how it is split,
``system`` assembles one instance's parts, ``instance`` loops over them.

Names are imported on first use (PEP 562), so ``import llmsim_nb`` and the
``llmsim`` command start fast; ``from llmsim_nb import X`` works for every name
in ``__all__``.
"""

from __future__ import annotations

import importlib

from ._version import __version__

# public name -> module that defines it
_EXPORTS = {
    "SimConfig": "llmsim_nb.config", "SchedulerConfig": "llmsim_nb.config",
    "MemoryConfig": "llmsim_nb.config", "SystemConfig": "llmsim_nb.config",
    "Trace": "llmsim_nb.workload", "Request": "llmsim_nb.workload",
    "load_trace": "llmsim_nb.workload",
    "Instance": "llmsim_nb.instance", "Simulator": "llmsim_nb.instance",
    "SimulationFinished": "llmsim_nb.instance",
    "InstanceParts": "llmsim_nb.system", "build_instance": "llmsim_nb.system",
    "summarize": "llmsim_nb.results",
    "sweep": "llmsim_nb.sweeps", "cluster_sweep": "llmsim_nb.sweeps",
    "Cluster": "llmsim_nb.cluster", "ClusterConfig": "llmsim_nb.cluster",
    "InstanceGroup": "llmsim_nb.cluster",
    "calibrate": "llmsim_nb.fidelity", "compare_requests": "llmsim_nb.fidelity",
    "compare_curves": "llmsim_nb.fidelity",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llmsim_nb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
