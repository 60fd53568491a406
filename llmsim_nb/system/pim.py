"""PIMSystem: where the PIMs are, what each NPU's share is, and the KV cache they hold.

``pim_type="local"``: every NPU has its own PIM device (the preset, with
``pim_channels`` channels if given, else as many as fit in ``npu_mem`` if that
is given, as the original sized its PIM: :mod:`llmsim_nb.config.original_flags`),
attached as a second compute unit of the NPU's node; NPU and PIM act as one execution engine and mapping happens inside
it (the paper's mapping in the execution engine).

``pim_type="pool"``: ``pim_num`` PIM devices (default: as many as NPUs) form a
pool after the NPUs in the network topology: NPU ``r`` is served by PIM device
``npu_num + r % pim_num``. When ``k = npu_num / pim_num`` NPUs share a PIM
device, each owns ``channels / k`` of its channels (its requests' KV lives in
them), a separate compute unit of that device. Mapping happens in the
scheduler and graph converter, which insert transfers over the interconnect.

Where the KV cache lives: in the PIM, in both cases (that is what the PIM's
GEMVs read). Weights and activations stay in NPU memory. So the KV blocks the
scheduler may allocate are::

    num_blocks = min over stages floor(pim_bytes_per_npu / (block_size * kv_bytes_s))

with ``pim_bytes_per_npu`` the NPU's PIM channels times the channel capacity
and ``kv_bytes_s`` a device's KV bytes per token in stage ``s``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import GIB, SimConfig
from ..config.original_flags import resolved_pim_channels
from ..engines.base import Engine
from ..engines.hetero import HeteroStack
from ..engines.mapping import MappingPolicy, get_policy
from ..engines.pim import PIMEngine, PIMSpec, get_pim
from ..graph.hetero import HeteroGraphConverter
from ..models.catalog import get_model
from ..models.template import BlockTemplate
from ..parallel.layout import ParallelLayout
from .memory_plan import MemoryPlan
from .model_checks import expert_routing


@dataclass(frozen=True, eq=False)
class PIMSystem:
    """The PIM side of a heterogeneous system.

    Attributes
    ----------
    placement : {"local", "pool"}
    device : PIMSpec
        One whole PIM device.
    share : PIMSpec
        The part of a PIM device one NPU uses (the whole device when local).
    num_npus : int
    num_pim_devices : int
        PIM devices in the system (one per NPU when local).
    pim_of : dict of int to (int, int)
        Pool: NPU device -> (PIM device, compute unit of that device).
    policy : callable
        Operator mapping policy.
    """

    placement: str
    device: PIMSpec
    share: PIMSpec
    num_npus: int
    num_pim_devices: int
    pim_of: dict
    policy: MappingPolicy

    @classmethod
    def from_config(cls, config: SimConfig, npu: Engine,
                    policy: MappingPolicy | None = None) -> "PIMSystem":
        """Resolve the PIM flags of ``config`` (``policy`` overrides ``pim_mapping``)."""
        system = config.system
        if system.pim_type not in ("local", "pool"):
            raise ValueError(f"PIMSystem needs pim_type 'local' or 'pool', got "
                             f"{system.pim_type!r}")
        device = get_pim(system.pim_hardware)
        # pim_channels, else npu_mem in whole channels (the original's PIM is the NPU's
        # memory), else the preset's: config.original_flags.resolved_pim_channels.
        channels = resolved_pim_channels(system, config.memory, device.channel_bytes,
                                         device.channels)
        if channels != device.channels:
            device = device.with_channels(channels)
        n = system.npu_num
        if system.pim_type == "local":
            share, count, pim_of = device, n, {}
        else:
            count = system.pim_num or n
            per = n // count  # SystemConfig checks that pim_num divides npu_num
            if device.channels % per:
                raise ValueError(
                    f"pim_type='pool': each of the {count} PIM devices serves {per} NPUs, "
                    f"which must split its {device.channels} channels evenly; pick pim_num "
                    f"or pim_channels so that npu_num / pim_num divides the channels")
            share = device.with_channels(device.channels // per)
            # Unit 1 + k: the k-th NPU's channel share (units >= 1 count as PIM work).
            pim_of = {r: (n + r % count, 1 + r // count) for r in range(n)}
        if policy is None:
            policy = get_policy(system.pim_mapping, npu, PIMEngine(share))
        return cls(system.pim_type, device, share, n, count, pim_of, policy)

    @property
    def num_devices(self) -> int:
        """Devices in the network topology: NPUs, plus the pool's PIM devices."""
        return self.num_npus + (self.num_pim_devices if self.placement == "pool" else 0)

    @property
    def kv_bytes_per_npu(self) -> int:
        """PIM bytes that hold one NPU's share of the KV cache."""
        return self.share.capacity_bytes

    def engine(self) -> PIMEngine:
        """The engine that times one NPU's PIM work."""
        return PIMEngine(self.share)

    def stack(self, npu: Engine, template: BlockTemplate, layout: ParallelLayout,
              config: SimConfig) -> HeteroStack:
        """The execution stack: NPU + this PIM, the mapping and sub-batching of
        ``config``, and for a mixture-of-experts model its routing (drawn from
        the run's seed, :func:`~llmsim_nb.system.model_checks.expert_routing`)
        and expert parallelism."""
        system = config.system
        routing, rng = expert_routing(get_model(config.model), config)
        return HeteroStack(npu, template, layout, pim=self.engine(), policy=self.policy,
                           sub_batches=system.num_sub_batches if system.sub_batch else 1,
                           criterion=system.sub_batch_criterion,
                           blocked=self.placement == "local" and not self.device.dual_row_buffer,
                           routing=routing, rng=rng,
                           expert_parallel=system.enable_expert_parallel,
                           expert_placement=system.expert_placement)

    def converter(self, layout: ParallelLayout, sharded: BlockTemplate) -> HeteroGraphConverter:
        return HeteroGraphConverter(layout, sharded, placement=self.placement,
                                    pim_of=self.pim_of, num_devices=self.num_devices)

    def num_kv_blocks(self, memory: MemoryPlan, block_size: int, model_name: str = "",
                      longest_request: int = 0) -> int:
        """KV blocks the PIMs hold (see the module docstring).

        Raises
        ------
        ValueError
            The NPU memory cannot hold the weights, the PIM share of an NPU
            cannot hold one block, or the longest request's KV cache does not
            fit.
        """
        where = (f"each NPU's local PIM ({self.share.channels} channels x "
                 f"{self.share.channel_bytes / GIB:.2f} GiB)" if self.placement == "local"
                 else f"each NPU's share of a pooled PIM device ({self.share.channels} of "
                      f"{self.device.channels} channels x {self.share.channel_bytes / GIB:.2f} "
                      f"GiB)")
        capacity = self.kv_bytes_per_npu
        counts = []
        for s, (w, kv) in enumerate(zip(memory.weight_bytes, memory.kv_bytes_per_token)):
            if memory.memory_bytes - w - memory.reserve_bytes < 0:
                raise ValueError(
                    f"model {model_name!r} does not fit: a device of pipeline stage {s} holds "
                    f"{w / GIB:.2f} GiB of weights plus a {memory.reserve_bytes / GIB:.2f} GiB "
                    f"activation reserve in its {memory.memory_bytes / GIB:.2f} GiB of NPU "
                    f"memory; raise npu_mem or add NPUs")
            block = block_size * kv
            if capacity < block:
                raise ValueError(
                    f"pim_type={self.placement!r}: {where} = {capacity / GIB:.3f} GiB cannot "
                    f"hold one KV block of {block / 2**20:.2f} MiB (stage {s}); raise "
                    f"pim_channels, lower block_size or add NPUs")
            counts.append(int(capacity // block))
        blocks = min(counts)
        need = -(-longest_request // block_size)
        if need > blocks:
            kv = max(memory.kv_bytes_per_token)
            raise ValueError(
                f"pim_type={self.placement!r}: the longest request needs {longest_request} "
                f"tokens of KV cache ({longest_request * kv / GIB:.3f} GiB per NPU) but {where} "
                f"holds {blocks} blocks of {block_size} tokens ({capacity / GIB:.3f} GiB); "
                f"raise pim_channels or add NPUs")
        return blocks


__all__ = ["PIMSystem"]
