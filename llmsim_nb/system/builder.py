"""The system builder: one function that assembles a serving instance's parts.

:func:`build_instance` turns a :class:`~llmsim_nb.config.SimConfig` into an
:class:`InstanceParts`: the model and its decoder-layer template, the parallel
layout, the hardware spec, the timing engine (wrapped by the reuse cache), the
PIM system, the execution stack that times a batch, the graph converter, the
network topology and its simulator, the memory plan, the paged KV cache and
the scheduler. Nothing is simulated; every part can be inspected on its own
in a notebook::

    parts = build_instance(SimConfig.from_flags(model_name="llama-7b", npu_num=4))
    parts.memory.weight_bytes, parts.kv_cache.num_blocks, parts.topology.name

:class:`~llmsim_nb.instance.Instance` wires the parts into the iteration loop;
a cluster builds one set of parts per instance. Each call builds fresh
mutable state (KV cache, scheduler), so parts are never shared between
instances.

The order of assembly is the order in which configuration errors are found:
the model, the layout, the hardware, the PIM system, the network, the memory
plan and the KV cache; the first impossible one raises ``ValueError``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..config import GIB, SimConfig
from ..config.fields import GPU_ENGINES
from ..config.sim import check_kv_offload
from ..engines.base import Engine, check_engine_argument, get_engine_class
from ..engines.hardware import get_hardware
from ..engines.npu_detailed import DetailedNPUEngine  # noqa: F401  registers "npu-detailed"
from ..engines.reuse import ReuseCache, ReuseEngine
from ..engines.data_parallel import DataParallelStack
from ..engines.stack import ExecutionStack
from ..power.cap import power_engine
from ..engines.serving_stack import NO_STACK, ServingStack, resolve_serving_stack
from ..graph.builder import GraphConverter
from ..graph.data_parallel import DataParallelGraphConverter
from ..models.catalog import get_model
from ..models.spec import ModelSpec
from ..models.decoder import decoder_template
from .model_checks import check_layer_kinds, expert_routing, kv_replication
from ..models.template import BlockTemplate
from ..network import Network, Topology, default_topology, load_topology
from ..network.interconnect import get_interconnect, interconnect_topology
from ..parallel.layout import ParallelLayout
from ..scheduler.kv_cache import KVCacheManager
from ..scheduler.prefix_cache import PrefixCachingKVManager
from ..scheduler.scheduler import Scheduler
from ..scheduler.v1_scheduler import V1Scheduler
from .memory_plan import MemoryPlan
from .pim import PIMSystem


@dataclass(frozen=True, eq=False)
class InstanceParts:
    """Everything one serving instance is made of, assembled but not run.

    Attributes
    ----------
    config : SimConfig
    model : ModelSpec
    template : BlockTemplate
        One decoder layer's operators ("compile one block and replicate it").
    layout : ParallelLayout
        Tensor / pipeline degrees and attention placement.
    hardware : object
        The device spec the engine times on (the preset's, with ``npu_mem``
        applied), e.g. :class:`~llmsim_nb.engines.npu.NPUSpec`.
    engine : Engine
        The timing engine; a :class:`~llmsim_nb.engines.reuse.ReuseEngine`
        around it with ``reuse=True``.
    pim : PIMSystem or None
        The PIM side (``pim_type`` local or pool).
    stack : ExecutionStack
        Times a batch: micro-batches, shards, one layer replicated.
    converter : GraphConverter
        Turns a timed iteration into an execution graph.
    topology : Topology
    network : Network
        Runs execution graphs on the topology.
    memory : MemoryPlan
        Weights, activation reserve and KV bytes per device.
    kv_cache : KVCacheManager
        The paged block pool (fresh, empty).
    scheduler : Scheduler
        The iteration-level scheduler over ``kv_cache`` (fresh, no requests).
    """

    config: SimConfig
    model: ModelSpec
    template: BlockTemplate
    layout: ParallelLayout
    hardware: object
    engine: Engine
    pim: PIMSystem | None
    stack: ExecutionStack
    converter: GraphConverter
    topology: Topology
    network: Network
    memory: MemoryPlan
    kv_cache: KVCacheManager | PrefixCachingKVManager
    scheduler: Scheduler | V1Scheduler
    #: The serving stack's host costs (``--serving_stack``; docs/serving-stack.md).
    serving_stack: ServingStack = NO_STACK

    @property
    def num_devices(self) -> int:
        """Devices in the network (NPUs plus a PIM pool's devices)."""
        return self.topology.num_devices


def build_instance(config: SimConfig | None = None, *, engine: Engine | None = None,
                   pim_mapping=None, longest_request: int = 0,
                   request_overheads: bool = True) -> InstanceParts:
    """Assemble the parts of one serving instance from ``config``.

    Parameters
    ----------
    config : SimConfig, optional
        Defaults to ``SimConfig()``.
    engine : Engine, optional
        A ready engine to use instead of the ``config.hardware`` preset's (it
        is wrapped by the reuse cache when ``config.reuse``).
    pim_mapping : callable, optional
        With ``pim_type`` local or pool, an operator mapping policy
        (``policy(op) -> bool array``, True = PIM) instead of
        ``config.system.pim_mapping``.
    longest_request : int, optional
        Prompt + output tokens of the longest request the instance must hold.
        With PIM the KV cache lives in the PIMs, which are checked to hold it
        (0: no check here; the scheduler still refuses a request that could
        never fit when it is submitted).
    request_overheads : bool, optional
        Whether the serving stack's per-request ``arrival_latency`` and
        ``completion_latency`` apply (a disaggregated cluster turns them off: its
        requests move between instances, not through an API).

    Returns
    -------
    InstanceParts

    Raises
    ------
    ValueError
        The first part the configuration makes impossible, with the reason.

    Warns
    -----
    ConfigWarning
        ``attention_placement='auto'`` with a tensor-parallel degree that does
        not divide the model's heads: attention switches to ``requests``
        placement (see :meth:`ParallelLayout.from_config`).
    """
    check_build_arguments(config, engine, pim_mapping, longest_request, "build_instance")
    config = SimConfig() if config is None else config
    model = get_model(config.model)
    template = decoder_template(model)
    layout = ParallelLayout.from_config(config.system, model.num_layers, model.num_heads,
                                        model.name, mixture_of_experts=model.moe is not None)
    preset = get_hardware(config.hardware)
    spec = preset.spec
    if config.memory.npu_mem is not None:
        spec = dataclasses.replace(spec, memory_bytes=int(config.memory.npu_mem * GIB))
    if engine is None:
        engine_name = preset.engine
        if config.npu_mode == "detailed":
            if engine_name != "npu":
                raise ValueError(f"npu_mode='detailed' needs an NPU hardware preset; "
                                 f"{config.hardware!r} uses the {engine_name!r} engine")
            engine_name = "npu-detailed"
        engine = get_engine_class(engine_name)(spec)
    engine = power_engine(engine, config)  # a power cap lowers the clock
    if config.reuse:
        engine = ReuseEngine(engine, ReuseCache(config.reuse_cache_size))
    pim = (PIMSystem.from_config(config, engine, pim_mapping)
           if config.system.pim_type != "none" else None)
    check_layer_kinds(model, layout, pim is not None,
                      config.system.enable_expert_parallel, engine.name)
    if pim is None and layout.attention == "data":
        stack = DataParallelStack(engine, template, layout, *expert_routing(model, config),
                                  expert_placement=config.system.expert_placement)
        converter = DataParallelGraphConverter(layout, stack.sharded)
    elif pim is None:
        stack = ExecutionStack(engine, template, layout, *expert_routing(model, config),
                               expert_parallel=config.system.enable_expert_parallel,
                               expert_placement=config.system.expert_placement)
        converter = GraphConverter(layout, stack.sharded,
                                   kv_replication=kv_replication(model, layout))
    else:
        stack = pim.stack(engine, template, layout, config)
        converter = pim.converter(layout, stack.sharded)
    topology = choose_topology(config, pim.num_devices if pim else None)
    collective = config.system.collective
    host_bandwidth, host_latency = host_link(config, preset)
    network = Network(topology, congestion=config.system.congestion,
                      algorithms=None if collective == "auto" else collective,
                      host_bandwidth=host_bandwidth, host_latency=host_latency)
    memory = _memory_plan(config, model, stack, layout, engine)
    block_size = config.scheduler.block_size
    num_blocks = (pim.num_kv_blocks(memory, block_size, model.name, longest_request)
                  if pim is not None else memory.num_kv_blocks(block_size, model.name))
    # policy 'auto': vLLM V1 on a GPU engine, the original's orca elsewhere.
    gpu = _is_gpu(engine)
    sched_config = config.scheduler.resolve(gpu=gpu)
    serving = resolve_serving_stack(config.serving_stack, gpu)
    if not request_overheads:
        serving = dataclasses.replace(serving, arrival_latency=0.0, completion_latency=0.0)
    if serving.arrival_latency:  # API + tokenising: the request waits that long first
        sched_config = dataclasses.replace(
            sched_config, batch_delay=sched_config.batch_delay + serving.arrival_latency)
    try:
        check_kv_offload(sched_config, config.memory)
    except ValueError as exc:
        if config.scheduler.policy != "auto":
            raise
        raise ValueError(f"{exc} (scheduling='auto' is {sched_config.policy!r} here: the "
                         f"hardware is {'' if gpu else 'not '}a GPU; pass "
                         f"--scheduling to choose)") from None
    if sched_config.policy == "vllm-v1":
        block_bytes = block_size * model.kv_bytes_per_token()
        num_host_blocks = int(config.memory.kv_offload_gib * GIB // block_bytes)
        if config.memory.kv_offload_gib and not num_host_blocks:
            raise ValueError(f"kv_offload_gib={config.memory.kv_offload_gib:g} holds no KV "
                             f"block: one block of {model.name} is {block_bytes} bytes "
                             f"({block_bytes / GIB:.3g} GiB); give at least that, or 0 for no "
                             f"host tier")
        kv_cache = PrefixCachingKVManager(
            num_blocks, block_size, enable_caching=sched_config.prefix_caching,
            num_host_blocks=num_host_blocks)
        scheduler = V1Scheduler(sched_config, kv_cache, model.kv_bytes_per_token())
    else:
        kv_cache = KVCacheManager(num_blocks, block_size)
        scheduler = Scheduler(sched_config, kv_cache, model.kv_bytes_per_token())
    return InstanceParts(config, model, template, layout, engine.spec, engine, pim, stack,
                         converter, topology, network, memory, kv_cache, scheduler, serving)


#: The original's device-to-host link (its memory-expansion setting), for
#: presets that name no host link: 512 GB/s and 1 us per transfer.
ORIGINAL_HOST_LINK = (512e9, 1e-6)


def host_link(config: SimConfig, preset) -> tuple[float, float]:
    """Bandwidth (B/s) and latency (s) of the device-to-host link: the config's
    ``host_bandwidth`` / ``host_latency`` where given, else the preset's
    ``host_link`` interconnect (its link bandwidth, and its per-transfer
    software latency for a copy), else :data:`ORIGINAL_HOST_LINK`."""
    bandwidth, latency = ORIGINAL_HOST_LINK
    if preset.host_link:
        link = get_interconnect(preset.host_link)
        bandwidth, latency = link.link_bandwidth, link.nic_latency
    mem = config.memory
    return (bandwidth if mem.host_bandwidth is None else mem.host_bandwidth,
            latency if mem.host_latency is None else mem.host_latency)


def _is_gpu(engine: Engine) -> bool:
    """Whether the engine times a GPU (a reuse cache answers with its engine's name)."""
    return getattr(engine, "name", "") in GPU_ENGINES


def check_build_arguments(config, engine, pim_mapping, longest_request, caller: str) -> None:
    """TypeError / ValueError for arguments of the wrong kind, saying what is expected.

    ``caller`` names the function in the message (``build_instance``, ``Simulator``).
    """
    if config is not None and not isinstance(config, SimConfig):
        hint = {str: f" (for a model by name: SimConfig.from_flags(model_name={config!r}))",
                dict: " (for flags: SimConfig.from_flags(**flags))"}
        raise TypeError(f"{caller}(config=...) must be a SimConfig or None, got "
                        f"{type(config).__name__}"
                        f"{next((h for t, h in hint.items() if isinstance(config, t)), '')}")
    check_engine_argument(engine, caller)
    if pim_mapping is not None and not callable(pim_mapping):
        hint = (f" (a named policy is the pim_mapping flag: SimConfig.from_flags("
                f"pim_mapping={pim_mapping!r}, ...))" if isinstance(pim_mapping, str) else "")
        raise TypeError(f"{caller}(pim_mapping=...) must be a callable policy(op) -> bool "
                        f"array (True = PIM) or None, got {type(pim_mapping).__name__}{hint}")
    pim_type = (config or SimConfig()).system.pim_type
    if pim_mapping is not None and pim_type == "none":
        raise ValueError(f"{caller}(pim_mapping=...) maps operators between NPU and PIM, but "
                         f"pim_type='none'; set pim_type 'local' or 'pool', or leave "
                         f"pim_mapping out")
    if isinstance(longest_request, bool) or not isinstance(longest_request, int) \
            or longest_request < 0:
        raise ValueError(f"{caller}(longest_request={longest_request!r}) must be an integer "
                         f">= 0 (prompt + output tokens; 0 = no check)")


def _memory_plan(config: SimConfig, model: ModelSpec, stack: ExecutionStack,
                 layout: ParallelLayout, engine: Engine) -> MemoryPlan:
    """Weights, activation reserve and KV bytes per device of the instance."""
    mem, sched = config.memory, config.scheduler
    return MemoryPlan.build(
        model, stack.sharded, layout, int(engine.spec.memory_bytes),
        mem.activation_reserve, gpu_memory_utilization=mem.gpu_memory_utilization,
        # vLLM profiles one forward of max_num_batched_tokens tokens whose
        # max_num_seqs sequences each sample one row of logits.
        activation_bytes=MemoryPlan.activation_peak_bytes(
            stack.sharded, sched.max_num_batched_tokens, model.dtype_bytes,
            min(sched.max_batch or sched.max_num_batched_tokens,
                sched.max_num_batched_tokens))
        if mem.gpu_memory_utilization is not None else 0,
        num_kv_blocks=mem.num_kv_blocks)


def choose_topology(config: SimConfig, num_devices: int | None = None) -> Topology:
    """The instance's network topology.

    The ``network`` file or preset when given; else the hardware preset's
    interconnect (GPUs: NVLink / PCIe, :mod:`llmsim_nb.network.interconnect`);
    else the original's default fully connected one (a power-of-two number of
    pipeline groups becomes its second dimension).

    Parameters
    ----------
    config : SimConfig
    num_devices : int, optional
        Devices the system needs: NPUs plus a PIM pool's devices (default
        ``npu_num``).

    Raises
    ------
    ValueError
        The topology has another number of devices.
    """
    system = config.system
    expected = system.npu_num if num_devices is None else num_devices
    link = get_hardware(config.hardware).interconnect
    if system.network is not None:
        topology = load_topology(system.network)
    elif link:
        topology = interconnect_topology(link, system.npu_num)
    elif expected != system.npu_num:  # a PIM pool beside the NPUs: one flat network
        topology = default_topology(expected, 1)
    elif system.npu_group & (system.npu_group - 1) == 0:
        topology = default_topology(system.npu_num, system.npu_group)
    else:  # the original's default needs a power-of-two group count
        topology = default_topology(system.npu_num, 1)
    if topology.num_devices != expected:
        pool = (f" + {expected - system.npu_num} pooled PIM devices"
                if expected != system.npu_num else "")
        raise ValueError(f"network {topology.name or system.network!r} has "
                         f"{topology.num_devices} devices but npu_num={system.npu_num}{pool} "
                         f"(its dimension sizes {list(topology.sizes)} multiply to "
                         f"{topology.num_devices})")
    return topology


__all__ = ["InstanceParts", "build_instance", "check_build_arguments", "choose_topology"]
