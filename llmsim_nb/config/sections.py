"""The sections of a simulation's configuration: scheduler, memory, system.

Frozen dataclasses validated in ``__post_init__``; variants with
:func:`dataclasses.replace`. Every numeric field's metadata holds its ``range``
(see :mod:`.fields` for why each bound is what it is). Messages lead with the
field's flag (``scheduling='fifo' is not one of ...``). A value that is valid
but can have no effect beside the others (``pim_channels`` with
``pim_type='none'``) is reported by :meth:`SimConfig.from_flags
<llmsim_nb.config.sim.SimConfig.from_flags>`, which knows which flags were
given (:mod:`.effects`); the constructors accept it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .fields import (ACTIVATION_RESERVE_RANGE, ATTENTION_PLACEMENTS, BATCH_DELAY_RANGE,
                     EXPERT_PLACEMENTS,
                     BLOCK_SIZE_RANGE, COLLECTIVES, GPU_MEMORY_UTILIZATION_RANGE,
                     HOST_BANDWIDTH_RANGE, HOST_LATENCY_RANGE, KV_MANAGE, KV_OFFLOAD_GIB_RANGE,
                     LONG_PREFILL_TOKEN_THRESHOLD_RANGE, PREEMPTION_MODES, REQUEST_ORDERS, MAX_BATCH_RANGE,
                     MAX_MODEL_LEN_RANGE, MAX_NUM_BATCHED_TOKENS_RANGE, MICRO_BATCHES_RANGE,
                     NPU_GROUP_RANGE, NPU_MEM_RANGE, NPU_NUM_RANGE, NUM_KV_BLOCKS_RANGE,
                     NUM_SUB_BATCHES_RANGE, PARALLEL, PIM_CHANNELS_RANGE, PIM_MAPPINGS,
                     PIM_NUM_RANGE, PIM_TYPES, SCHEDULING_POLICIES, SUB_BATCH_CRITERIA,
                     _check_bool, _check_choice, _check_numbers, _meta, _show)
from .fields import CARBON_RANGE, DEVICE_PRICE_RANGE, POWER_CAP_W_RANGE

@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """How requests are batched and how the KV cache is managed."""

    policy: str = field(default="auto", metadata=_meta(
        "Scheduling policy: auto (vllm-v1 on a GPU hardware preset, orca on the others), "
        "orca (iteration-level, whole prompts mixed with decodes), "
        "vllm (prefill-first, as vLLM v0), chunked (token budget mixing prefill chunks "
        "with decodes, as Sarathi-Serve), vllm-v1 (vLLM V1's scheduler: one token budget, "
        "automatic prefix caching, preemption by recompute)", flag="scheduling"))
    max_batch: int = field(default=0, metadata=_meta(
        "Most requests in one batch (vLLM's max_num_seqs); 0 = unlimited", flag="max_batch",
        range=MAX_BATCH_RANGE, note="requests per batch; 0 = unlimited", integer=True))
    batch_delay: float = field(default=0.0, metadata=_meta(
        "A request becomes schedulable this long after it arrives", "s", flag="batch_delay",
        range=BATCH_DELAY_RANGE, note="up to one day"))
    block_size: int = field(default=16, metadata=_meta(
        "Tokens per paged KV-cache block", "token", flag="block_size",
        range=BLOCK_SIZE_RANGE, note="tokens per KV block", integer=True))
    kv_manage: str = field(default="vllm", metadata=_meta(
        "KV management: vllm (blocks on demand) or max (reserve prompt+output at admission)",
        flag="kv_manage"))
    max_num_batched_tokens: int = field(default=2048, metadata=_meta(
        "Token budget per iteration of the chunked policy; with gpu_memory_utilization also "
        "the tokens of the profiled forward whose activations are kept out (otherwise a "
        "value under orca or vllm has no effect and is warned about)", "token",
        flag="max_num_batched_tokens", range=MAX_NUM_BATCHED_TOKENS_RANGE,
        note="tokens per iteration", integer=True))
    gen: bool = field(default=False, metadata=_meta(
        "Skip prefill: requests start with their prompt already in the KV cache", flag="gen"))
    max_model_len: int | None = field(default=None, metadata=_meta(
        "Longest request served (prompt + output tokens, vLLM's max_model_len); None = the "
        "model's context length. A longer request is refused before the run", "token",
        flag="max_model_len", range=MAX_MODEL_LEN_RANGE,
        note="longest context; None = the model's", integer=True, optional=True))
    enable_prefix_caching: bool | None = field(default=None, metadata=_meta(
        "Automatic prefix caching (vLLM's enable_prefix_caching): full KV blocks are "
        "shared by content and kept cached after their requests finish; None = on for "
        "vllm-v1; only vllm-v1 caches", flag="enable_prefix_caching"))
    enable_chunked_prefill: bool = field(default=True, metadata=_meta(
        "vllm-v1: split a prompt over iterations to fit the token budget (vLLM's "
        "enable_chunked_prefill); off, a prompt over the budget waits", 
        flag="enable_chunked_prefill"))
    long_prefill_token_threshold: int = field(default=0, metadata=_meta(
        "vllm-v1: most tokens one request computes per iteration (vLLM's "
        "long_prefill_token_threshold); 0 = no cap", "token",
        flag="long_prefill_token_threshold", range=LONG_PREFILL_TOKEN_THRESHOLD_RANGE,
        note="tokens per request per iteration; 0 = no cap", integer=True))
    scheduler_reserve_full_isl: bool = field(default=False, metadata=_meta(
        "vllm-v1: admit a waiting request only if the KV blocks of its whole prompt "
        "(plus its outputs after a preemption) are free, not just of its first chunk "
        "(vLLM's scheduler_reserve_full_isl, on by default in vLLM 0.19; off here, as "
        "vLLM V1 before it)", flag="scheduler_reserve_full_isl"))
    scheduling_policy: str = field(default="fcfs", metadata=_meta(
        "vllm-v1: order of admission and preemption, fcfs or priority (lower value "
        "first, then arrival; vLLM's scheduling_policy)", flag="scheduling_policy"))
    preemption_mode: str | None = field(default=None, metadata=_meta(
        "What happens to a request whose KV blocks must be given up: recompute (vllm-v1's "
        "default: freed, computed again later) or swap (moved to host memory and reloaded; "
        "what orca / vllm / chunked always do); None = the policy's", flag="preemption_mode"))

    def __post_init__(self) -> None:
        _check_numbers(self)
        _check_choice("scheduling", self.policy, SCHEDULING_POLICIES)
        _check_choice("kv_manage", self.kv_manage, KV_MANAGE)
        _check_bool("gen", self.gen)
        _check_bool("enable_chunked_prefill", self.enable_chunked_prefill)
        _check_bool("scheduler_reserve_full_isl", self.scheduler_reserve_full_isl)
        if self.enable_prefix_caching is not None:
            _check_bool("enable_prefix_caching", self.enable_prefix_caching)
        _check_choice("scheduling_policy", self.scheduling_policy, REQUEST_ORDERS)
        if self.preemption_mode is not None:
            _check_choice("preemption_mode", self.preemption_mode, PREEMPTION_MODES)
        if self.policy == "auto":
            return  # checked once resolve() knows the policy (when the instance is built)
        v1 = self.policy == "vllm-v1"
        wrong = [text for text, bad in (
            ("enable_prefix_caching=True needs scheduling='vllm-v1' (only it caches "
             "prefixes)", self.enable_prefix_caching and not v1),
            ("enable_chunked_prefill=False needs scheduling='vllm-v1' (orca and vllm never "
             "chunk; chunked always does)", not self.enable_chunked_prefill and not v1),
            ("scheduler_reserve_full_isl=True needs scheduling='vllm-v1'",
             self.scheduler_reserve_full_isl and not v1),
            (f"long_prefill_token_threshold={self.long_prefill_token_threshold} needs "
             f"scheduling='vllm-v1'", self.long_prefill_token_threshold and not v1),
            ("scheduling_policy='priority' needs scheduling='vllm-v1'",
             self.scheduling_policy != "fcfs" and not v1),
            ("preemption_mode='recompute' needs scheduling='vllm-v1' (orca, vllm and chunked "
             "swap to host)", self.preemption_mode == "recompute" and not v1),
            ("gen=True is not supported by scheduling='vllm-v1' (use orca, vllm or chunked)",
             self.gen and v1),
            ("kv_manage='max' is not supported by scheduling='vllm-v1', which allocates "
             "blocks on demand", self.kv_manage == "max" and v1)) if bad]
        if wrong:
            raise ValueError("; ".join(wrong))

    def resolve(self, gpu: bool) -> SchedulerConfig:
        """This config with ``policy='auto'`` made concrete: ``vllm-v1`` when the
        engine is a GPU (``gpu``), else ``orca``; the checks of the concrete
        policy run then (a vllm-v1 flag with an NPU's orca is an error)."""
        if self.policy != "auto":
            return self
        policy = "vllm-v1" if gpu else "orca"
        try:
            return replace(self, policy=policy)
        except ValueError as exc:
            raise ValueError(f"{exc} (scheduling='auto' is {policy!r} here: the hardware "
                             f"{'is' if gpu else 'is not'} a GPU; pass --scheduling to choose)"
                             ) from None

    @property
    def prefix_caching(self) -> bool:
        """Whether prefixes are cached (``enable_prefix_caching``, None = the policy's;
        False while the policy is ``auto``: see :meth:`resolve`)."""
        if self.enable_prefix_caching is None:
            return self.policy == "vllm-v1"
        return self.enable_prefix_caching


@dataclass(frozen=True, slots=True)
class MemoryConfig:
    """Device memory and the host link KV blocks are evicted over."""

    npu_mem: float | None = field(default=None, metadata=_meta(
        "Device memory per NPU; None takes the hardware preset's", "GiB", flag="npu_mem",
        range=NPU_MEM_RANGE, note="memory of one device; None = the preset's",
        optional=True, positive=True))
    host_bandwidth: float | None = field(default=None, metadata=_meta(
        "Device-to-host bandwidth for KV swap and the host KV tier; None = the hardware "
        "preset's host link (PCIe 4.0 / 5.0 x16: 31.5 / 63 GB/s on the GPU presets), else "
        "the original's memory-expansion setting, 512 GB/s", "B/s", flag="host_bandwidth",
        range=HOST_BANDWIDTH_RANGE, note="device-to-host link; None = the preset's",
        optional=True, positive=True))
    host_latency: float | None = field(default=None, metadata=_meta(
        "Fixed latency of one host transfer; None = the preset's host link (10 us per "
        "PCIe copy on the GPU presets), else the original's 1 us", "s", flag="host_latency",
        range=HOST_LATENCY_RANGE, note="latency of one host transfer; None = the preset's",
        optional=True))
    activation_reserve: float = field(default=0.05, metadata=_meta(
        "Fraction of device memory kept for activations, not KV blocks",
        range=ACTIVATION_RESERVE_RANGE, note="fraction of device memory"))
    gpu_memory_utilization: float | None = field(default=None, metadata=_meta(
        "Fraction of device memory for weights + activations + KV blocks, as vLLM's "
        "gpu_memory_utilization (replaces activation_reserve: the peak activations of "
        "a max_num_batched_tokens forward are kept out instead); None = use "
        "activation_reserve", flag="gpu_memory_utilization",
        range=GPU_MEMORY_UTILIZATION_RANGE,
        note="fraction of device memory; None = use activation_reserve",
        optional=True, positive=True))
    num_kv_blocks: int | None = field(default=None, metadata=_meta(
        "Explicit KV-cache blocks (vLLM's num_gpu_blocks_override); takes precedence "
        "over gpu_memory_utilization (then warned about) and activation_reserve; must fit "
        "beside the weights; refused with pim_type local or pool (the KV cache lives in the "
        "PIMs)", "block", flag="num_kv_blocks", range=NUM_KV_BLOCKS_RANGE,
        note="KV blocks per device; None = from memory", integer=True, optional=True))
    kv_offload_gib: float = field(default=0.0, metadata=_meta(
        "Host-memory KV tier (vLLM's CPU offloading / LMCache style): cached blocks "
        "evicted from the device are copied to a host pool of this size (its own LRU), "
        "and a prefix hit there is loaded back over the host link before the prefill; "
        "needs vllm-v1 with prefix caching; 0 = none", "GiB", flag="kv_offload_gib",
        range=KV_OFFLOAD_GIB_RANGE, note="host memory for KV blocks; 0 = no host tier"))

    def __post_init__(self) -> None:
        _check_numbers(self)


@dataclass(frozen=True, slots=True)
class SystemConfig:
    """Devices, parallelism and heterogeneity (the seed's system flags)."""

    npu_num: int = field(default=1, metadata=_meta(
        "Number of NPUs", flag="npu_num", range=NPU_NUM_RANGE,
        note="NPUs in one system", integer=True))
    npu_group: int = field(default=1, metadata=_meta(
        "Pipeline groups (the seed's npu_group)", flag="npu_group", range=NPU_GROUP_RANGE,
        note="pipeline groups; must divide npu_num", integer=True))
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
        "Most micro-batches per iteration for pipeline overlap; 0 = one per stage (1 with "
        "pim_type local or pool, the original's: config.original_flags)",
        flag="micro_batches", range=MICRO_BATCHES_RANGE,
        note="micro-batches per iteration; 0 = one per stage", integer=True))
    attention_placement: str = field(default="auto", metadata=_meta(
        "Attention across a tensor-parallel group: heads (each rank a share of every "
        "request's heads, Megatron), requests (Orca's selective batching, as the original: "
        "each rank all heads of its own requests), data (attention data parallelism for "
        "MoE models with enable_expert_parallel, vLLM's --data-parallel-size / SGLang's "
        "--enable-dp-attention: each rank runs the layers' dense part with whole weights "
        "on its own requests, all-to-all dispatch and combine around the experts) or auto "
        "(heads when the group size divides the heads, else requests, with a warning; "
        "requests with pim_type local or pool, the original's: config.original_flags)",
        flag="attention_placement"))
    collective: str = field(default="auto", metadata=_meta(
        "Collective algorithm on every network dimension: auto (ring on Ring "
        "dimensions, direct on FullyConnected and Switch), ring (the original's system "
        "setting), direct or halving_doubling", flag="collective"))
    congestion: bool = field(default=False, metadata=_meta(
        "Congestion-aware network (links shared by concurrent transfers slow them)",
        flag="congestion"))
    enable_expert_parallel: bool = field(default=False, metadata=_meta(
        "Expert parallelism (vLLM's --enable-expert-parallel): each rank of a "
        "tensor-parallel group holds whole experts (an equal contiguous share) instead of "
        "a slice of every expert; the rank with the most work sets an MoE layer's time; "
        "needs a mixture-of-experts model and tensor parallelism",
        flag="enable_expert_parallel"))
    expert_placement: str = field(default="contiguous", metadata=_meta(
        "Which rank holds each expert under expert parallelism: contiguous (rank r holds "
        "experts r*E/tp .. (r+1)*E/tp - 1, vLLM's default) or round_robin (expert e on rank "
        "e mod tp, vLLM's --expert-placement-strategy round_robin); needs "
        "enable_expert_parallel", flag="expert_placement"))
    pim_hardware: str = field(default="neupims-hbm2", metadata=_meta(
        "PIM device preset (llmsim_nb.engines.pim.list_pim()); needs pim_type local or pool",
        flag="pim_hardware"))
    pim_channels: int = field(default=0, metadata=_meta(
        "Channels per PIM device; 0 = npu_mem / channel capacity with pim_type local and npu_mem "
        "(the original's PIM is the NPU's memory: config.original_flags), else the preset's "
        "(32). The KV cache lives in the PIM, channels x 1 GiB per device; needs pim_type "
        "local or pool", flag="pim_channels",
        range=PIM_CHANNELS_RANGE,
        note="channels per PIM device; 0 = the preset's", integer=True))
    pim_num: int = field(default=0, metadata=_meta(
        "PIM devices in the pool (pim_type pool); 0 = one per NPU; must divide npu_num",
        flag="pim_num", range=PIM_NUM_RANGE,
        note="PIM devices in the pool; 0 = one per NPU", integer=True))
    pim_mapping: str = field(default="decode-attention", metadata=_meta(
        "Operator mapping: decode-attention (score/context of decode tokens on PIM, "
        "NeuPIMs), attention (all attention on PIM), fastest (whichever engine's model "
        "is faster per op); needs pim_type local or pool", flag="pim_mapping"))
    num_sub_batches: int = field(default=2, metadata=_meta(
        "Sub-batches per micro-batch with sub_batch on (NeuPIMs uses 2); needs sub_batch",
        flag="num_sub_batches", range=NUM_SUB_BATCHES_RANGE,
        note="sub-batches per micro-batch", integer=True))
    sub_batch_criterion: str = field(default="memory", metadata=_meta(
        "What sub-batches balance: memory (KV bytes read, the PIM's work) or compute "
        "(FLOPs); needs sub_batch", flag="sub_batch_criterion"))
    power: bool = field(default=False, metadata=_meta(
        "Power model (docs/power.md): energy per device and iteration, per request, "
        "J per token, cost and carbon in the results", flag="power"))
    power_cap_w: float | None = field(default=None, metadata=_meta(
        "Power cap per device (GPU presets): the sustained clock drops until the most "
        "demanding op fits it, so compute-bound ops slow (Splitwise); None = no cap", "W",
        flag="power_cap_w", range=POWER_CAP_W_RANGE, note="W per device; None = no cap",
        optional=True, positive=True))
    device_price_per_hour: float | None = field(default=None, metadata=_meta(
        "Price of one device-hour for the cost figures; None = the power preset's "
        "on-demand price (NaN cost where it has none); needs power", "USD",
        flag="device_price_per_hour", range=DEVICE_PRICE_RANGE,
        note="USD per device-hour; None = the preset's", optional=True))
    carbon_g_per_kwh: float = field(default=0.0, metadata=_meta(
        "Grid carbon intensity for grams of CO2 per token; 0 = not reported; needs power",
        "g/kWh", flag="carbon_g_per_kwh", range=CARBON_RANGE, note="g CO2 per kWh"))

    def __post_init__(self) -> None:
        _check_numbers(self)
        _check_bool("power", self.power)
        for name in ("device_price_per_hour", "carbon_g_per_kwh"):
            if getattr(self, name) is not None and getattr(self, name) and not self.power:
                raise ValueError(f"{name}={getattr(self, name)!r} prices the power model's "
                                 f"results; it needs power=True (--power on)")
        if self.npu_num % self.npu_group:
            raise ValueError(f"npu_group={self.npu_group} must divide "
                             f"npu_num={self.npu_num}")
        _check_choice("parallel", self.parallel, PARALLEL)
        _check_choice("pim_type", self.pim_type, PIM_TYPES)
        _check_choice("attention_placement", self.attention_placement, ATTENTION_PLACEMENTS)
        _check_choice("collective", self.collective, COLLECTIVES)
        _check_bool("congestion", self.congestion)
        _check_bool("enable_expert_parallel", self.enable_expert_parallel)
        _check_choice("expert_placement", self.expert_placement, EXPERT_PLACEMENTS)
        if self.network is not None and (not isinstance(self.network, str) or not self.network):
            raise ValueError(f"network={_show(self.network)} must be a file path or preset "
                             f"name")
        _check_bool("sub_batch", self.sub_batch)
        if not isinstance(self.pim_hardware, str) or not self.pim_hardware:
            raise ValueError(f"pim_hardware={_show(self.pim_hardware)} must be a PIM preset "
                             f"name")
        _check_choice("pim_mapping", self.pim_mapping, PIM_MAPPINGS)
        _check_choice("sub_batch_criterion", self.sub_batch_criterion, SUB_BATCH_CRITERIA)
        if self.pim_num and self.pim_type != "pool":
            raise ValueError(f"pim_num={self.pim_num} sizes a PIM pool; it needs "
                             f"pim_type='pool', got pim_type={self.pim_type!r}")
        if self.pim_num and self.npu_num % self.pim_num:
            raise ValueError(f"pim_num={self.pim_num} must divide npu_num={self.npu_num} "
                             f"(each PIM device serves the same number of NPUs)")
        if self.sub_batch and self.pim_type == "none":
            raise ValueError("sub_batch=True needs pim_type 'local' or 'pool' (sub-batch "
                             "interleaving overlaps NPU and PIM), got pim_type='none'")
