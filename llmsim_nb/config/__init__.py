"""Simulation configuration: frozen, validated dataclasses.

One vocabulary serves the CLI and Python: :meth:`SimConfig.from_flags` takes
exactly the ``llmsim run`` flag names (the original LLMServingSim's sixteen
parameters plus ``hardware``, ``max_num_batched_tokens``, ``seed`` and
``config``) and builds the nested config. Variants are made with
:func:`dataclasses.replace`. Constructors do no I/O; only ``from_flags`` with
``config=`` and :meth:`SimConfig.from_yaml` read a file.

Every field carries ``metadata`` with ``help`` and ``units`` so that widgets and
documentation can be generated from it; every numeric field also its ``range``
(inclusive ``(min, max)``, checked when the config is made; :mod:`.fields` says
why each bound is what it is).

The package: :mod:`.fields` (choices and checks), :mod:`.sections`
(scheduler, memory, system), :mod:`.sim` (:class:`SimConfig` and the flags),
:mod:`.effects` (flags that can have no effect: errors and warnings),
:mod:`.yaml_file` (reading YAML settings files).
"""

from .fields import (ATTENTION_PLACEMENTS, COLLECTIVES, GIB, KV_MANAGE, NPU_MODES, PARALLEL,
                     PIM_MAPPINGS, PIM_TYPES, SCHEDULING_POLICIES, SUB_BATCH_CRITERIA,
                     ConfigWarning, did_you_mean)
from .sections import MemoryConfig, SchedulerConfig, SystemConfig
from .sim import FLAG_FIELDS, SimConfig
from .effects import check_flag_effects
from .yaml_file import read_yaml_file, read_yaml_flags, yaml_problem

__all__ = ["ATTENTION_PLACEMENTS", "COLLECTIVES", "ConfigWarning", "FLAG_FIELDS", "GIB",
           "KV_MANAGE", "MemoryConfig", "NPU_MODES", "PARALLEL", "PIM_MAPPINGS", "PIM_TYPES",
           "SCHEDULING_POLICIES", "SUB_BATCH_CRITERIA", "SchedulerConfig", "SimConfig",
           "SystemConfig", "check_flag_effects", "did_you_mean", "read_yaml_file",
           "read_yaml_flags", "yaml_problem"]
