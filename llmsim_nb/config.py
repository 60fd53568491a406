"""Simulation configuration: frozen, validated dataclasses.

One vocabulary serves the CLI and Python: :meth:`SimConfig.from_flags` takes
exactly the ``llmsim run`` flag names (the original LLMServingSim's sixteen
parameters plus ``hardware``, ``max_num_batched_tokens``, ``seed`` and
``config``) and builds the nested config. Variants are made with
:func:`dataclasses.replace`. Constructors do no I/O; only ``from_flags`` with
``config=`` and :meth:`SimConfig.from_yaml` read a file.

Every field carries ``metadata`` with ``help`` and ``units`` so that widgets and
documentation can be generated from it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEDULING_POLICIES = ("orca", "vllm", "chunked")
KV_MANAGE = ("vllm", "max")
PARALLEL = ("tensor", "pipeline", "hybrid")
PIM_TYPES = ("none", "local", "pool")
PIM_MAPPINGS = ("decode-attention", "attention", "fastest")
SUB_BATCH_CRITERIA = ("memory", "compute")
ATTENTION_PLACEMENTS = ("auto", "heads", "requests")
COLLECTIVES = ("auto", "ring", "direct", "halving_doubling")
NPU_MODES = ("analytical", "detailed")
GIB = 1024 ** 3


def _meta(help: str, units: str = "1", flag: str | None = None) -> dict[str, Any]:
    return {"help": help, "units": units, "flag": flag}


def _check_int(owner: str, name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{owner}.{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}.{name} must be >= {minimum}, got {value}")


def _check_real(owner: str, name: str, value: Any, minimum: float, *, strict: bool = False,
                maximum: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{owner}.{name} must be a finite number, got {value!r}")
    if value < minimum or (strict and value == minimum):
        op = ">" if strict else ">="
        raise ValueError(f"{owner}.{name} must be {op} {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{owner}.{name} must be <= {maximum}, got {value}")


def _check_choice(owner: str, name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{owner}.{name}={value!r} is not one of {list(allowed)}")


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """How requests are batched and how the KV cache is managed."""

    policy: str = field(default="orca", metadata=_meta(
        "Scheduling policy: orca (iteration-level, whole prompts mixed with decodes), "
        "vllm (prefill-first, as vLLM v0), chunked (token budget mixing prefill chunks "
        "with decodes, as Sarathi-Serve / vLLM v1)", flag="scheduling"))
    max_batch: int = field(default=0, metadata=_meta(
        "Most requests in one batch (vLLM's max_num_seqs); 0 = unlimited", flag="max_batch"))
    batch_delay: float = field(default=0.0, metadata=_meta(
        "A request becomes schedulable this long after it arrives", "s", flag="batch_delay"))
    block_size: int = field(default=16, metadata=_meta(
        "Tokens per paged KV-cache block", "token", flag="block_size"))
    kv_manage: str = field(default="vllm", metadata=_meta(
        "KV management: vllm (blocks on demand) or max (reserve prompt+output at admission)",
        flag="kv_manage"))
    max_num_batched_tokens: int = field(default=2048, metadata=_meta(
        "Token budget per iteration of the chunked policy", "token",
        flag="max_num_batched_tokens"))
    gen: bool = field(default=False, metadata=_meta(
        "Skip prefill: requests start with their prompt already in the KV cache", flag="gen"))
    max_model_len: int | None = field(default=None, metadata=_meta(
        "Longest request served (prompt + output tokens, vLLM's max_model_len); None = the "
        "model's context length. A longer request is refused before the run", "token",
        flag="max_model_len"))

    def __post_init__(self) -> None:
        owner = "SchedulerConfig"
        if self.max_model_len is not None:
            _check_int(owner, "max_model_len", self.max_model_len, 1)
        _check_choice(owner, "policy", self.policy, SCHEDULING_POLICIES)
        _check_int(owner, "max_batch", self.max_batch, 0)
        _check_real(owner, "batch_delay", self.batch_delay, 0.0)
        _check_int(owner, "block_size", self.block_size, 1)
        _check_choice(owner, "kv_manage", self.kv_manage, KV_MANAGE)
        _check_int(owner, "max_num_batched_tokens", self.max_num_batched_tokens, 1)
        if not isinstance(self.gen, bool):
            raise ValueError(f"{owner}.gen must be a bool, got {self.gen!r}")


@dataclass(frozen=True, slots=True)
class MemoryConfig:
    """Device memory and the host link KV blocks are evicted over."""

    npu_mem: float | None = field(default=None, metadata=_meta(
        "Device memory per NPU; None takes the hardware preset's", "GiB", flag="npu_mem"))
    host_bandwidth: float = field(default=512e9, metadata=_meta(
        "Device-to-host bandwidth for KV eviction and reload (the original's "
        "memory-expansion setting, 512 GB/s)", "B/s"))
    host_latency: float = field(default=1e-6, metadata=_meta(
        "Fixed latency of one host transfer", "s"))
    activation_reserve: float = field(default=0.05, metadata=_meta(
        "Fraction of device memory kept for activations, not KV blocks"))
    gpu_memory_utilization: float | None = field(default=None, metadata=_meta(
        "Fraction of device memory for weights + activations + KV blocks, as vLLM's "
        "gpu_memory_utilization (replaces activation_reserve: the peak activations of "
        "a max_num_batched_tokens forward are kept out instead); None = use "
        "activation_reserve", flag="gpu_memory_utilization"))
    num_kv_blocks: int | None = field(default=None, metadata=_meta(
        "Explicit KV-cache blocks (vLLM's num_gpu_blocks_override); takes precedence "
        "over gpu_memory_utilization and activation_reserve; must fit beside the "
        "weights", "block", flag="num_kv_blocks"))

    def __post_init__(self) -> None:
        owner = "MemoryConfig"
        if self.npu_mem is not None:
            _check_real(owner, "npu_mem", self.npu_mem, 0.0, strict=True)
        _check_real(owner, "host_bandwidth", self.host_bandwidth, 0.0, strict=True)
        _check_real(owner, "host_latency", self.host_latency, 0.0)
        _check_real(owner, "activation_reserve", self.activation_reserve, 0.0, maximum=0.9)
        if self.gpu_memory_utilization is not None:
            _check_real(owner, "gpu_memory_utilization", self.gpu_memory_utilization, 0.0,
                        strict=True, maximum=1.0)
        if self.num_kv_blocks is not None:
            _check_int(owner, "num_kv_blocks", self.num_kv_blocks, 1)


@dataclass(frozen=True, slots=True)
class SystemConfig:
    """Devices, parallelism and heterogeneity (the seed's system flags)."""

    npu_num: int = field(default=1, metadata=_meta("Number of NPUs", flag="npu_num"))
    npu_group: int = field(default=1, metadata=_meta(
        "Pipeline groups (the seed's npu_group)", flag="npu_group"))
    parallel: str = field(default="hybrid", metadata=_meta(
        "Parallelism: tensor, pipeline or hybrid", flag="parallel"))
    pim_type: str = field(default="none", metadata=_meta(
        "Processing-in-memory: none, local or pool", flag="pim_type"))
    sub_batch: bool = field(default=False, metadata=_meta(
        "NeuPIMs sub-batch interleaving", flag="sub_batch"))
    network: str | None = field(default=None, metadata=_meta(
        "Network topology file or preset name; None builds the original's default "
        "(fully connected, 64 GB/s links)", flag="network"))
    micro_batches: int = field(default=0, metadata=_meta(
        "Most micro-batches per iteration for pipeline overlap; 0 = one per stage",
        flag="micro_batches"))
    attention_placement: str = field(default="auto", metadata=_meta(
        "Attention across a tensor-parallel group: heads (each rank a share of every "
        "request's heads, Megatron), requests (Orca's selective batching, as the original: "
        "each rank all heads of its own requests) or auto (heads when the group size "
        "divides the heads, else requests)", flag="attention_placement"))
    collective: str = field(default="auto", metadata=_meta(
        "Collective algorithm on every network dimension: auto (ring on Ring "
        "dimensions, direct on FullyConnected and Switch), ring (the original's system "
        "setting), direct or halving_doubling", flag="collective"))
    congestion: bool = field(default=False, metadata=_meta(
        "Congestion-aware network (links shared by concurrent transfers slow them)",
        flag="congestion"))
    pim_hardware: str = field(default="neupims-hbm2", metadata=_meta(
        "PIM device preset (llmsim_nb.engines.pim.list_pim())", flag="pim_hardware"))
    pim_channels: int = field(default=0, metadata=_meta(
        "Channels per PIM device; 0 = the preset's (32). The KV cache lives in the PIM, "
        "channels x 1 GiB per device", flag="pim_channels"))
    pim_num: int = field(default=0, metadata=_meta(
        "PIM devices in the pool (pim_type pool); 0 = one per NPU; must divide npu_num",
        flag="pim_num"))
    pim_mapping: str = field(default="decode-attention", metadata=_meta(
        "Operator mapping: decode-attention (score/context of decode tokens on PIM, "
        "NeuPIMs), attention (all attention on PIM), fastest (whichever engine's model "
        "is faster per op)", flag="pim_mapping"))
    num_sub_batches: int = field(default=2, metadata=_meta(
        "Sub-batches per micro-batch with sub_batch on (NeuPIMs uses 2)",
        flag="num_sub_batches"))
    sub_batch_criterion: str = field(default="memory", metadata=_meta(
        "What sub-batches balance: memory (KV bytes read, the PIM's work) or compute "
        "(FLOPs)", flag="sub_batch_criterion"))

    def __post_init__(self) -> None:
        owner = "SystemConfig"
        _check_int(owner, "npu_num", self.npu_num, 1)
        _check_int(owner, "npu_group", self.npu_group, 1)
        if self.npu_num % self.npu_group:
            raise ValueError(f"SystemConfig.npu_group={self.npu_group} must divide "
                             f"npu_num={self.npu_num}")
        _check_choice(owner, "parallel", self.parallel, PARALLEL)
        _check_choice(owner, "pim_type", self.pim_type, PIM_TYPES)
        _check_int(owner, "micro_batches", self.micro_batches, 0)
        _check_choice(owner, "attention_placement", self.attention_placement,
                      ATTENTION_PLACEMENTS)
        _check_choice(owner, "collective", self.collective, COLLECTIVES)
        if not isinstance(self.congestion, bool):
            raise ValueError(f"{owner}.congestion must be a bool, got {self.congestion!r}")
        if self.network is not None and (not isinstance(self.network, str) or not self.network):
            raise ValueError(f"{owner}.network must be a file path or preset name, "
                             f"got {self.network!r}")
        if not isinstance(self.sub_batch, bool):
            raise ValueError(f"{owner}.sub_batch must be a bool, got {self.sub_batch!r}")
        if not isinstance(self.pim_hardware, str) or not self.pim_hardware:
            raise ValueError(f"{owner}.pim_hardware must be a PIM preset name, "
                             f"got {self.pim_hardware!r}")
        _check_int(owner, "pim_channels", self.pim_channels, 0)
        _check_int(owner, "pim_num", self.pim_num, 0)
        _check_choice(owner, "pim_mapping", self.pim_mapping, PIM_MAPPINGS)
        _check_int(owner, "num_sub_batches", self.num_sub_batches, 2)
        _check_choice(owner, "sub_batch_criterion", self.sub_batch_criterion,
                      SUB_BATCH_CRITERIA)
        if self.pim_num and self.pim_type != "pool":
            raise ValueError(f"SystemConfig.pim_num={self.pim_num} sizes a PIM pool; it needs "
                             f"pim_type='pool', got {self.pim_type!r}")
        if self.pim_num and self.npu_num % self.pim_num:
            raise ValueError(f"SystemConfig.pim_num={self.pim_num} must divide "
                             f"npu_num={self.npu_num} (each PIM device serves the same "
                             f"number of NPUs)")
        if self.sub_batch and self.pim_type == "none":
            raise ValueError("SystemConfig.sub_batch=True needs pim_type 'local' or 'pool' "
                             "(sub-batch interleaving overlaps NPU and PIM)")


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything that determines a simulation's result (with the trace).

    Parameters
    ----------
    model : str
        Catalog model name (``llmsim_nb.models.list_models()``).
    hardware : str
        Engine preset (``llmsim_nb.engines.list_hardware()``).
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
    seed: int = field(default=0, metadata=_meta("Random seed", flag="seed"))
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
        "Most cached operator timings (least recently used are dropped)", "entry",
        flag="reuse_cache_size"))
    npu_mode: str = field(default="analytical", metadata=_meta(
        "NPU model: analytical (closed form) or detailed (walks every GEMM's tile "
        "schedule; slower)", flag="npu_mode"))

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"SimConfig.model must be a model name, got {self.model!r}")
        if not isinstance(self.hardware, str) or not self.hardware:
            raise ValueError(f"SimConfig.hardware must be a preset name, got {self.hardware!r}")
        _check_int("SimConfig", "seed", self.seed, 0)
        if self.dataset is not None and (not isinstance(self.dataset, str) or not self.dataset):
            raise ValueError(f"SimConfig.dataset must be a trace file path or None (the "
                             f"packaged trace), got {self.dataset!r}")
        if not isinstance(self.fast_run, bool):
            raise ValueError(f"SimConfig.fast_run must be a bool, got {self.fast_run!r}")
        if self.fast_run and self.reuse is False:
            raise ValueError("SimConfig.fast_run=True keeps the reuse cache on disk, but "
                             "reuse=False switches the cache off; turn reuse on or fast_run off")
        if not isinstance(self.reuse, bool):
            raise ValueError(f"SimConfig.reuse must be on/off (a bool), got {self.reuse!r}")
        _check_int("SimConfig", "reuse_cache_size", self.reuse_cache_size, 1)
        _check_choice("SimConfig", "npu_mode", self.npu_mode, NPU_MODES)
        for name, cls in (("scheduler", SchedulerConfig), ("memory", MemoryConfig),
                          ("system", SystemConfig)):
            if not isinstance(getattr(self, name), cls):
                raise ValueError(f"SimConfig.{name} must be a {cls.__name__}, "
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
        known ones. A value of None means "use the default".
        """
        unknown = sorted(set(flags) - set(cls.flag_names()))
        if unknown:
            raise ValueError(f"unknown flag(s) {unknown}; known flags: {sorted(cls.flag_names())}")
        values: dict[str, Any] = {}
        path = flags.pop("config", None)
        if path is not None:
            values.update(_read_yaml_flags(path))
        flags.pop("output", None)
        values.update({k: v for k, v in flags.items() if v is not None})
        return _build_from_flags(cls, values)

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
    def from_json(cls, text: str) -> "SimConfig":
        data = json.loads(text)
        return cls(**{**data, "scheduler": SchedulerConfig(**data["scheduler"]),
                      "memory": MemoryConfig(**data["memory"]),
                      "system": SystemConfig(**data["system"])})


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

# Flags whose Python type is float but that users reasonably pass as ints.
_FLOAT_FLAGS = {"batch_delay", "npu_mem", "gpu_memory_utilization"}


def _build_from_flags(cls: type[SimConfig], values: dict[str, Any]) -> SimConfig:
    sections: dict[str | None, dict[str, Any]] = {None: {}, "scheduler": {}, "memory": {},
                                                   "system": {}}
    for flag, value in values.items():
        if flag not in FLAG_FIELDS:
            raise ValueError(f"unknown flag {flag!r}; known flags: {sorted(cls.flag_names())}")
        if flag in _FLOAT_FLAGS and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if flag == "reuse" and isinstance(value, str):
            if value not in ("on", "off"):
                raise ValueError(f"reuse={value!r} is not one of ['on', 'off']")
            value = value == "on"
        section, name = FLAG_FIELDS[flag]
        sections[section][name] = value
    return cls(**sections[None], scheduler=SchedulerConfig(**sections["scheduler"]),
               memory=MemoryConfig(**sections["memory"]),
               system=SystemConfig(**sections["system"]))


def yaml_problem(exc: Exception) -> str:
    """A YAML parse error on one line: what is wrong and where (PyYAML's spans several)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
    return problem + (f" at line {mark.line + 1}, column {mark.column + 1}" if mark else "")


def read_yaml_file(path: str | Path, what: str) -> Any:
    """Parse a YAML file; ``ValueError`` naming ``what`` and the file if it cannot be."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{what} {str(p)!r} does not exist")
    try:
        return yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{what} {str(p)!r} is not valid YAML: {yaml_problem(exc)}") from None


def _read_yaml_flags(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    data = read_yaml_file(p, "config file")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(p)!r} must hold a mapping of flag names to values")
    unknown = sorted(set(data) - set(FLAG_FIELDS))
    if unknown:
        raise ValueError(f"config file {str(p)!r} has unknown key(s) {unknown}; "
                         f"known: {sorted(FLAG_FIELDS)}")
    return data
