"""Power, energy and cost: watts per device, joules per iteration, power caps.

A part next to each engine (docs/power.md): GPU, NPU and PIM power models
(:mod:`.meter`, :mod:`.pim_energy`), link and host energies, presets with
their sources (:mod:`.presets`, ``presets/power.yaml``), and power caps that
lower the clock an engine times at (:mod:`.cap`). ``SimConfig`` flags:
``power``, ``power_cap_w``, ``device_price_per_hour``, ``carbon_g_per_kwh``.
"""

from .cap import ClockedEngine, clock_fraction
from .meter import PowerMeter
from .pim_energy import PIMCommands, attention_commands, command_energy, gemv_commands
from .presets import GPUPower, HostPower, NPUPower, PIMPower, host_power, power_of

__all__ = ["ClockedEngine", "GPUPower", "HostPower", "NPUPower", "PIMCommands", "PIMPower",
           "PowerMeter", "attention_commands", "clock_fraction", "command_energy",
           "gemv_commands", "host_power", "power_of"]
