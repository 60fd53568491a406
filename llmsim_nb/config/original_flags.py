"""What the original's PIM flags imply: defaults that apply once ``pim_type`` is given.

The original LLMServingSim (IISWC'24, github.com/casys-kaist/LLMServingSim,
commit 638d9f1, the artifact's ``evaluation2.sh``) configures an NPU + PIM run
with ``--pim_type local`` (or ``pool``), ``--sub_batch`` and ``--npu_mem``
alone; everything else about the PIM side is fixed in its code. Three of those
fixed choices are settings of ours, whose package defaults differ. When
``pim_type`` is ``local`` or ``pool`` and the flag is left at its default, it
takes the original's value:

``micro_batches`` 0 -> 1
    The original never cuts a batch into pipeline micro-batches: its orca
    scheduler makes one batch of every request that has arrived
    (``inference_serving/scheduler.py``, ``Scheduler.batch``), and with
    ``--sub_batch`` its PIM code splits that batch into exactly two
    sub-batches interleaved in one workload (``inference_serving/pim.py``,
    ``subbatchInt`` and ``mergeText``). Our default, one micro-batch per
    pipeline stage, is not what those flags ran.
``attention_placement`` auto -> requests
    The original's PIM times each request's attention whole
    (``pim.py``, ``estimate_mha_latency``: one latency per request) on the
    PIM of NPU ``i % (npu_num / npu_group)`` (``mergeText``:
    ``attn_npu[i % npus_per_group]``): Orca's selective batching, our
    ``requests`` placement. ``auto`` would split heads over the group where
    they divide. Not for a mixture-of-experts model (the original served
    none, and their attention is split by heads here): ``auto`` keeps its
    meaning there.
``pim_channels`` 0 -> ``npu_mem`` / channel capacity (``local``, with ``npu_mem``)
    In the original a local PIM *is* the NPU's memory: ``--npu_mem`` sizes it
    (``main.py``: "npu local mem (hbm) in GB"; ``scheduler.py`` keeps the
    weights and the KV cache in those ``npu_mem`` bytes when the PIM is not a
    pool). A PIM device of ours has
    ``pim_channels`` channels of the preset's channel capacity (1 GiB for
    ``neupims-hbm2``), so ``--npu_mem 4`` means 4 channels (which is also a
    NeuPIMs device's 32 channels shared by its 8 systolic arrays, the 8 NPUs
    of the original per device). Without ``npu_mem`` the PIM preset's
    channels stay (a whole 32-channel device). An ``npu_mem`` that is not a
    whole number of channels raises ``ValueError``: give ``pim_channels``.
    A pool keeps the preset's channels: there the original's ``npu_mem`` was
    the pooled PIM's size with the NPU memory unbounded, which one flag that
    also sizes our NPU memory cannot say.

Any of the three given explicitly (``micro_batches=2``,
``attention_placement='heads'``, ``pim_channels=32``) wins. The values used are
in a run's attributes (``implied_flags`` lists the implied ones) and in the
``llmsim run`` summary. One behaviour of the original is *not* taken: its
``main.py`` switches ``--sub_batch`` off in silence when ``npu_num >= 64`` and
the network file's name contains ``neupims`` (the 13B and 30B points of
Fig. 7); an explicit flag is never reinterpreted here, so ``sub_batch=True``
interleaves sub-batches at every size (``docs/original-flags.md``).
"""

from __future__ import annotations

from .fields import GIB
from .sections import MemoryConfig, SystemConfig

#: pim_type values that bring the original's PIM defaults.
PIM_ON = ("local", "pool")
#: micro_batches implied by the original's PIM flags.
ORIGINAL_PIM_MICRO_BATCHES = 1
#: attention_placement implied by the original's PIM flags.
ORIGINAL_PIM_ATTENTION = "requests"


def uses_original_pim(system: SystemConfig) -> bool:
    """Whether ``system`` asks for a PIM (so the original's PIM defaults apply)."""
    return system.pim_type in PIM_ON


def resolved_micro_batches(system: SystemConfig, num_stages: int) -> int:
    """Most micro-batches per iteration: the flag, else 1 with PIM, else one per stage."""
    if system.micro_batches:
        return system.micro_batches
    return ORIGINAL_PIM_MICRO_BATCHES if uses_original_pim(system) else num_stages


def resolved_attention(system: SystemConfig, mixture_of_experts: bool = False) -> str:
    """``attention_placement`` with ``auto`` resolved to ``requests`` under PIM for a
    dense model; any other value, ``auto`` without PIM, and ``auto`` for a
    mixture-of-experts model (the original served none, and selective batching
    is not modelled for them) are returned as given."""
    if system.attention_placement == "auto" and uses_original_pim(system) \
            and not mixture_of_experts:
        return ORIGINAL_PIM_ATTENTION
    return system.attention_placement


def resolved_pim_channels(system: SystemConfig, memory: MemoryConfig, channel_bytes: int,
                          preset_channels: int) -> int:
    """Channels per PIM device: ``pim_channels``, else (local PIM) ``npu_mem`` in whole
    channels of ``channel_bytes``, else ``preset_channels``.

    Raises
    ------
    ValueError
        ``npu_mem`` (with PIM and no ``pim_channels``) is not a whole number of
        channels of ``channel_bytes``.
    """
    if system.pim_channels or system.pim_type != "local" or memory.npu_mem is None:
        return system.pim_channels or preset_channels
    channels = memory.npu_mem * GIB / channel_bytes
    if channels < 1 or channels != int(channels):
        raise ValueError(
            f"npu_mem={memory.npu_mem:g} with pim_type={system.pim_type!r} sizes the PIM as "
            f"the original did (its PIM is the NPU's npu_mem), but {memory.npu_mem:g} GiB is "
            f"not a whole number of {system.pim_hardware!r} channels of "
            f"{channel_bytes / GIB:g} GiB; give npu_mem in whole channels or set "
            f"pim_channels")
    return int(channels)


def implied_flags(system: SystemConfig, memory: MemoryConfig, num_stages: int,
                  channel_bytes: int, preset_channels: int,
                  mixture_of_experts: bool = False) -> dict[str, object]:
    """The flags whose value here comes from the original's PIM defaults (empty without
    PIM): name -> value used. For a run's attributes and summary."""
    if not uses_original_pim(system):
        return {}
    out: dict[str, object] = {}
    if not system.micro_batches:
        out["micro_batches"] = resolved_micro_batches(system, num_stages)
    if system.attention_placement == "auto" and not mixture_of_experts:
        out["attention_placement"] = ORIGINAL_PIM_ATTENTION
    if not system.pim_channels and system.pim_type == "local" and memory.npu_mem is not None:
        out["pim_channels"] = resolved_pim_channels(system, memory, channel_bytes,
                                                    preset_channels)
    return out


def format_implied(implied: dict[str, object]) -> str:
    """``"micro_batches=1, attention_placement='requests'"`` (empty string for none)."""
    return ", ".join(f"{k}={v!r}" for k, v in implied.items())


__all__ = ["ORIGINAL_PIM_ATTENTION", "ORIGINAL_PIM_MICRO_BATCHES", "PIM_ON", "format_implied",
           "implied_flags", "resolved_attention", "resolved_micro_batches",
           "resolved_pim_channels", "uses_original_pim"]
