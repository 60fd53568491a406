"""SimConfig: everything that determines a simulation's result, and its flags.

:meth:`SimConfig.from_flags` takes exactly the ``llmsim run`` flag names and
builds the nested config; :data:`FLAG_FIELDS` maps each flag to its section
and field.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .fields import (EXPERT_ROUTINGS, EXPERT_SKEW_RANGE, NPU_MODES, REUSE_CACHE_SIZE_RANGE,
                     SEED_RANGE, _check_bool, _check_choice,
                     _check_numbers, _meta, _show, did_you_mean, did_you_mean_each)
from .effects import check_flag_effects
from .sections import MemoryConfig, SchedulerConfig, SystemConfig
from .yaml_file import read_yaml_flags, unique_keys

@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything that determines a simulation's result (with the trace).

    Parameters
    ----------
    model : str
        Catalog model name (``llmsim_nb.models.list_models()``).
    hardware : str
        Engine preset (``llmsim_nb.engines.hardware.list_hardware()``).
    scheduler, memory, system : nested configs
    seed : int
        Seed of the ``numpy.random.Generator`` used for generated traces.
    dataset : str or None
        Trace file; None simulates the packaged 100-request ShareGPT-like trace.
    fast_run : bool
        The original's flag to bypass model compilation. Our engines are
        analytical and never compile, so results are the same with or without
        it; it is kept so the original's command lines run unchanged.
    """

    model: str = field(default="gpt3-6.7b", metadata=_meta("Model name", flag="model_name"))
    hardware: str = field(default="npu-128x128", metadata=_meta(
        "Engine hardware preset", flag="hardware"))
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    system: SystemConfig = field(default_factory=SystemConfig)
    seed: int = field(default=0, metadata=_meta(
        "Random seed", flag="seed", range=SEED_RANGE, note="an int64", integer=True))
    dataset: str | None = field(default=None, metadata=_meta("Trace file", flag="dataset"))
    fast_run: bool = field(default=False, metadata=_meta(
        "The original's compile bypass: Simulator.run (so the CLI and sweeps too) keeps "
        "the reuse cache on disk between runs, one file per engine configuration; "
        "results are the same either way",
        flag="fast_run"))
    reuse: bool = field(default=True, metadata=_meta(
        "Reuse operator timings across layers and iterations (on/off); results are "
        "identical either way, only simulation time changes", flag="reuse"))
    reuse_cache_size: int = field(default=1_000_000, metadata=_meta(
        "Most cached operator timings (least recently used are dropped); needs reuse on",
        "entry",
        flag="reuse_cache_size", range=REUSE_CACHE_SIZE_RANGE,
        note="cached operator timings", integer=True))
    expert_routing: str = field(default="uniform", metadata=_meta(
        "How tokens of a mixture-of-experts model pick their experts: uniform (each "
        "token top-k distinct experts at random) or skewed (Zipf-like popularity, expert "
        "e weighted (e+1)**-expert_skew); drawn from the run's seed", flag="expert_routing"))
    expert_skew: float = field(default=1.0, metadata=_meta(
        "Zipf exponent of expert popularity with expert_routing='skewed' (0 = uniform)",
        flag="expert_skew", range=EXPERT_SKEW_RANGE, note="Zipf exponent"))
    npu_mode: str = field(default="analytical", metadata=_meta(
        "NPU model: analytical (closed form) or detailed (walks every GEMM's tile "
        "schedule; slower)", flag="npu_mode"))
    serving_stack: str = field(default="auto", metadata=_meta(
        "Serving stack whose host costs every step pays (host time, kernel launches, CUDA "
        "graphs, overlap, per-request overheads; llmsim list serving-stacks): auto (vllm-v1 "
        "on a GPU hardware preset, none elsewhere), none, vllm-v1, vllm-v0, sglang, trtllm "
        "or a registered name", flag="serving_stack"))

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model_name={_show(self.model)} must be a model name")
        if not isinstance(self.hardware, str) or not self.hardware:
            raise ValueError(f"hardware={_show(self.hardware)} must be a hardware preset name")
        _check_numbers(self)
        if self.dataset is not None and (not isinstance(self.dataset, str) or not self.dataset):
            raise ValueError(f"dataset={_show(self.dataset)} must be a trace file path or None "
                             f"(the packaged trace)")
        _check_bool("fast_run", self.fast_run)
        if self.fast_run and self.reuse is False:
            raise ValueError("fast_run=True keeps the reuse cache on disk, but reuse=False "
                             "switches the cache off; turn reuse on or fast_run off")
        if not isinstance(self.reuse, bool):
            raise ValueError(f"reuse={_show(self.reuse)} must be on/off (a bool)")
        _check_choice("npu_mode", self.npu_mode, NPU_MODES)
        if not isinstance(self.serving_stack, str) or not self.serving_stack:
            raise ValueError(f"serving_stack={_show(self.serving_stack)} must be a serving "
                             f"stack name (llmsim list serving-stacks) or 'auto'")
        _check_choice("expert_routing", self.expert_routing, EXPERT_ROUTINGS)
        if isinstance(self.memory, MemoryConfig) and isinstance(self.scheduler, SchedulerConfig) \
                and self.scheduler.policy != "auto":
            check_kv_offload(self.scheduler, self.memory)
        for name, cls in (("scheduler", SchedulerConfig), ("memory", MemoryConfig),
                          ("system", SystemConfig)):
            if not isinstance(getattr(self, name), cls):
                raise ValueError(f"{name} must be a {cls.__name__}, "
                                 f"got {type(getattr(self, name)).__name__}")

    # ----------------------------------------------------------------- flags
    @classmethod
    def flag_names(cls) -> tuple[str, ...]:
        """Every flag :meth:`from_flags` accepts (the CLI's, without dashes)."""
        return tuple(FLAG_FIELDS) + ("output", "config")

    @classmethod
    def from_flags(cls, **flags: Any) -> "SimConfig":
        """Build a config from ``llmsim run`` flag names.

        ``config=`` names a YAML file whose keys are flag names too; explicit
        flags override it. ``output`` is accepted (it is where the CLI writes
        files) and does not affect the config. Unknown names raise, listing the
        known ones and suggesting the closest. A value of None means "use the
        default".

        A flag given here (or in the YAML file) with a value other than its
        default that can have no effect in the configuration it is part of is
        never ignored in silence: see :func:`.effects.check_flag_effects` for which
        raise ``ValueError`` and which warn (:class:`~.fields.ConfigWarning`). A flag
        passed at its default value asks for nothing and is never reported, so
        ``from_flags(**config.to_flags())`` (what sweeps and the dashboard do)
        reports only what the config itself sets.
        """
        unknown = sorted(set(flags) - set(cls.flag_names()))
        if unknown:
            raise ValueError(f"unknown flag(s) {unknown}; known flags: {sorted(cls.flag_names())}"
                             f"{did_you_mean_each(unknown, cls.flag_names())}")
        values: dict[str, Any] = {}
        path = flags.pop("config", None)
        if path is not None:
            if not isinstance(path, (str, os.PathLike)) or not str(path):
                raise ValueError(f"config must be the path of a YAML file of flags, "
                                 f"got {_show(path)}")
            values.update(read_yaml_flags(path, FLAG_FIELDS))
        flags.pop("output", None)
        values.update({k: v for k, v in flags.items() if v is not None})
        config = _build_from_flags(cls, values)
        check_flag_effects(config, _changed_flags(config, values), stacklevel=3)
        return config

    @classmethod
    def from_yaml(cls, path: str | Path) -> "SimConfig":
        """Read a YAML file of flag names (see :meth:`from_flags`)."""
        return cls.from_flags(config=str(path))

    def to_flags(self) -> dict[str, Any]:
        """The inverse of :meth:`from_flags` (``from_flags(**c.to_flags()) == c``)."""
        out: dict[str, Any] = {}
        for flag, (section, name) in FLAG_FIELDS.items():
            owner = self if section is None else getattr(self, section)
            out[flag] = getattr(owner, name)
        return out

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "SimConfig":
        """The inverse of :meth:`to_json`.

        Raises ``ValueError`` (one line) for text that is not JSON, a key that is
        missing or unknown (at the top or in a section, naming the expected
        keys), a section that is not an object, and any value the dataclasses
        refuse.
        """
        if not isinstance(text, (str, bytes, bytearray)):
            raise ValueError(f"SimConfig.from_json needs a JSON string, got "
                             f"{type(text).__name__}")
        try:
            data = json.loads(text, object_pairs_hook=unique_keys)
        except RecursionError:
            raise ValueError("SimConfig JSON nests too deeply to be a config") from None
        except ValueError as exc:  # JSONDecodeError, bad UTF-8, too many digits, a key twice
            raise ValueError(f"SimConfig JSON is not valid JSON: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                             ) from None
        _check_json_keys("SimConfig JSON", data, cls)
        sections = {}
        for name, section_cls in _SECTION_CLASSES.items():
            _check_json_keys(f"SimConfig JSON {name!r}", data[name], section_cls)
            sections[name] = section_cls(**data[name])
        return cls(**{**data, **sections})


def _flag_fields() -> dict[str, tuple[str | None, str]]:
    table: dict[str, tuple[str | None, str]] = {}
    for section, cls in ((None, SimConfig), ("scheduler", SchedulerConfig),
                         ("memory", MemoryConfig), ("system", SystemConfig)):
        for f in dataclasses.fields(cls):
            flag = f.metadata.get("flag")
            if flag:
                table[flag] = (section, f.name)
    return table


FLAG_FIELDS = _flag_fields()

_SECTION_CLASSES = {"scheduler": SchedulerConfig, "memory": MemoryConfig, "system": SystemConfig}


def _check_json_keys(what: str, data: Any, cls: type) -> None:
    """``data`` must be a JSON object with exactly the fields of ``cls``."""
    expected = [f.name for f in dataclasses.fields(cls)]
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be an object with the {cls.__name__} keys {expected}, "
                         f"got {_json_type(data)}")
    missing = [k for k in expected if k not in data]
    if missing:
        raise ValueError(f"{what} is missing key(s) {missing}; expected the {cls.__name__} "
                         f"keys {expected}")
    unknown = sorted(str(k) for k in set(data) - set(expected))
    if unknown:
        raise ValueError(f"{what} has unknown key(s) {unknown}; "
                         f"expected the {cls.__name__} keys {expected}"
                         f"{did_you_mean_each(unknown, expected)}")


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    if value is None:
        return "null"
    return f"{names.get(type(value), type(value).__name__)} ({_show(value, 40)})"


def _changed_flags(config: SimConfig, given) -> set[str]:
    """The flags of ``given`` whose value in ``config`` is not their default."""
    out = set()
    for flag in given:
        section, name = FLAG_FIELDS[flag]
        cls = SimConfig if section is None else _SECTION_CLASSES[section]
        f = next(f for f in dataclasses.fields(cls) if f.name == name)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        value = getattr(config if section is None else getattr(config, section), name)
        if value != default:
            out.add(flag)
    return out


# Flags whose Python type is float but that users reasonably pass as ints.
_FLOAT_FLAGS = {"batch_delay", "npu_mem", "gpu_memory_utilization", "power_cap_w",
                "device_price_per_hour", "carbon_g_per_kwh"}


def check_kv_offload(scheduler: SchedulerConfig, memory: MemoryConfig) -> None:
    """``kv_offload_gib`` needs a concrete vllm-v1 policy with prefix caching."""
    if memory.kv_offload_gib and not (scheduler.policy == "vllm-v1"
                                      and scheduler.prefix_caching):
        raise ValueError(f"kv_offload_gib={_show(memory.kv_offload_gib)} needs "
                         f"scheduling='vllm-v1' with prefix caching on (the host tier "
                         f"keeps cached blocks); got scheduling={_show(scheduler.policy)}, "
                         f"enable_prefix_caching={_show(scheduler.enable_prefix_caching)}")


#: Switches given as on / off on the command line (or True / False).
_ON_OFF_FLAGS = ("reuse", "enable_prefix_caching", "enable_chunked_prefill",
                 "scheduler_reserve_full_isl", "power")


def _build_from_flags(cls: type[SimConfig], values: dict[str, Any]) -> SimConfig:
    sections: dict[str | None, dict[str, Any]] = {None: {}, "scheduler": {}, "memory": {},
                                                   "system": {}}
    for flag, value in values.items():
        if flag not in FLAG_FIELDS:
            raise ValueError(f"unknown flag {flag!r}; known flags: {sorted(cls.flag_names())}"
                             f"{did_you_mean(flag, cls.flag_names())}")
        if flag in _FLOAT_FLAGS and isinstance(value, int) and not isinstance(value, bool) \
                and abs(value) <= 2 ** 53:  # exactly a float; larger ints fail the range check
            value = float(value)
        if flag in _ON_OFF_FLAGS and isinstance(value, str):
            if value not in ("on", "off"):
                raise ValueError(f"{flag}={_show(value)} is not one of ['on', 'off']"
                                 f"{did_you_mean(value, ('on', 'off'))}")
            value = value == "on"
        section, name = FLAG_FIELDS[flag]
        sections[section][name] = value
    return cls(**sections[None], scheduler=SchedulerConfig(**sections["scheduler"]),
               memory=MemoryConfig(**sections["memory"]),
               system=SystemConfig(**sections["system"]))
