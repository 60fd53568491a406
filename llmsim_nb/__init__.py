"""llmsim_nb: a Jupyter-first simulator of LLM inference serving.

The public API::

    from llmsim_nb import Simulator, SimConfig, load_trace
    sim = Simulator(SimConfig.from_flags(model_name="gpt3-6.7b"))
    ds = sim.step()      # one iteration as an xarray Dataset
    ds = sim.run()       # the whole run as one Dataset
"""

from ._version import __version__
from .config import MemoryConfig, SchedulerConfig, SimConfig, SystemConfig
from .results.dataset import summarize
from .instance.simulator import SimulationFinished, Simulator
from .sweeps.sweep import sweep  # the function; the module stays importable as llmsim_nb.sweeps.sweep
from .workload import Trace, load_trace

__all__ = ["__version__", "Simulator", "SimulationFinished", "SimConfig", "SchedulerConfig",
           "MemoryConfig", "SystemConfig", "Trace", "load_trace", "summarize", "sweep"]
