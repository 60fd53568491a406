"""Flags that can change nothing in their configuration: errors and warnings.

:meth:`SimConfig.from_flags <llmsim_nb.config.sim.SimConfig.from_flags>` calls
:func:`check_flag_effects` with the flags it was given, so a flag that is set
but can have no effect is never ignored in silence. Which ones raise and which
warn, and why, is in :func:`check_flag_effects`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from .fields import GPU_ENGINES, ConfigWarning, _show


def tensor_parallel_degree(system) -> int:
    """The tensor-parallel group size ``parallel``, ``npu_num`` and ``npu_group``
    give (as :meth:`~llmsim_nb.parallel.layout.ParallelLayout.from_config`
    resolves them; a contradiction is reported there)."""
    if system.parallel == "tensor":
        return system.npu_num
    if system.parallel == "pipeline":
        return 1
    return system.npu_num // system.npu_group


def _setting(section, flags: list[str]) -> str:
    """``"flag=value, ..."`` of flags named as the fields of ``section``."""
    return ", ".join(f"{flag}={_show(getattr(section, flag))}" for flag in flags)


def _has(flags: list[str]) -> str:
    return "has" if len(flags) == 1 else "have"


def _auto_policy(hardware: str) -> str | None:
    """What ``scheduling='auto'`` becomes on ``hardware`` (None for an unknown preset,
    which building the instance reports): vllm-v1 on a GPU engine, else orca."""
    from .._presets import preset_entries

    entry = preset_entries("hardware.yaml").get(hardware)
    if not isinstance(entry, dict):
        return None
    return "vllm-v1" if entry.get("engine") in GPU_ENGINES else "orca"


def check_flag_effects(config, given: Iterable[str], *, stacklevel: int = 2) -> None:
    """Report the flags in ``given`` that can have no effect in ``config``.

    ``config`` is a :class:`~llmsim_nb.config.sim.SimConfig`; ``given`` holds
    the flag names the user set to a value other than the default
    (:meth:`SimConfig.from_flags` passes those of the flags and YAML keys it
    was given; a flag at its default value asks for nothing, and
    :meth:`SimConfig.to_flags` round trips pass every flag). Nothing is
    changed: an error raises ``ValueError`` (one line, every problem found,
    joined by ``"; "``), a warning is a :class:`ConfigWarning` (a
    ``UserWarning``) per problem.

    Errors: the flag tunes a feature that another flag of the same config
    switches off, so it can never matter (the rule of the ``pim_num`` and
    ``sub_batch`` checks of :class:`SystemConfig`); the fix is to switch the
    feature on or to drop the flag.

    - ``pim_hardware``, ``pim_channels``, ``pim_mapping`` with
      ``pim_type='none'``: no PIM is built.
    - ``num_sub_batches``, ``sub_batch_criterion`` without ``sub_batch=True``:
      each micro-batch stays one sub-batch, and the criterion only balances
      sub-batches.
    - ``reuse_cache_size`` with ``reuse=off``: no timing is cached.
    - ``expert_skew`` without ``expert_routing='skewed'``: no other routing has
      a popularity exponent.
    - ``expert_placement`` without ``enable_expert_parallel``: experts are
      split by width, so no rank holds whole experts.
    - ``num_kv_blocks`` with ``pim_type`` local or pool: the KV cache lives in
      the PIMs, whose size (``pim_channels``) sets the block count.

    Warnings: the flag is moot because of the setup's shape (the policy, the
    device count) or because another flag takes precedence. Such flags are
    routinely held fixed while that shape is varied (a sweep over
    ``scheduling`` with one token budget, as the invariant tests compare all
    three policies on one; a sweep over ``npu_num`` from one device with one
    ``collective``), which an error would forbid; the run goes ahead and the
    warning says what is ignored.

    - ``max_num_batched_tokens`` with ``scheduling`` orca or vllm and no
      ``gpu_memory_utilization``: only ``chunked`` has a token budget, and the
      budget also sizes the activation memory kept out under
      ``gpu_memory_utilization`` (vLLM's profiling forward), so with that set
      it is not reported.
    - ``collective`` (other than auto) and ``attention_placement`` (other
      than auto) with a tensor-parallel degree of 1: there are no collectives
      and no attention to place across ranks.
    - ``congestion`` on one NPU without a PIM pool: its only transfers, the
      KV store and load, use the two directions of the host link and never
      share it.
    - ``gpu_memory_utilization`` with ``num_kv_blocks`` (and no PIM): the
      explicit block count takes precedence (as vLLM's
      ``num_gpu_blocks_override``).

    Not reported, because they do have an effect: ``micro_batches`` with one
    pipeline stage (the batch is still cut into micro-batches that run one
    after another), ``block_size`` with ``kv_manage='max'`` (the reservation
    is rounded up to whole blocks), ``congestion`` with more than one device
    (pipeline sends may share links). A
    tensor-parallel degree that does not divide the heads with
    ``attention_placement='auto'`` is warned about by
    :meth:`~llmsim_nb.parallel.layout.ParallelLayout.from_config`, which
    knows the model.
    """
    set_ = set(given)
    sched, mem, system = config.scheduler, config.memory, config.system
    errors: list[str] = []
    if system.pim_type == "none":
        pim = [f for f in ("pim_hardware", "pim_channels", "pim_mapping") if f in set_]
        if pim:
            errors.append(f"{_setting(system, pim)} {_has(pim)} no effect with "
                          f"pim_type='none' (no PIM is simulated); set pim_type 'local' or "
                          f"'pool', or drop {'it' if len(pim) == 1 else 'them'}")
    elif "num_kv_blocks" in set_:
        errors.append(f"num_kv_blocks={mem.num_kv_blocks} has no effect with "
                      f"pim_type={system.pim_type!r}: the KV cache lives in the PIM devices, "
                      f"whose channels (pim_channels) set the block count; drop it")
    if not system.sub_batch:
        sub = [f for f in ("num_sub_batches", "sub_batch_criterion") if f in set_]
        if sub:
            errors.append(f"{_setting(system, sub)} {_has(sub)} no effect without "
                          f"sub_batch=True (each micro-batch stays one sub-batch); turn "
                          f"sub_batch on (with pim_type 'local' or 'pool') or drop "
                          f"{'it' if len(sub) == 1 else 'them'}")
    if "expert_placement" in set_ and not system.enable_expert_parallel:
        errors.append(f"expert_placement={system.expert_placement!r} has no effect without "
                      f"enable_expert_parallel=True (experts are split by width, every rank "
                      f"holds a slice of each); turn expert parallelism on or drop it")
    if "expert_skew" in set_ and config.expert_routing != "skewed":
        errors.append(f"expert_skew={config.expert_skew} has no effect with "
                      f"expert_routing={config.expert_routing!r} (only 'skewed' routing has a "
                      f"popularity exponent); set expert_routing 'skewed' or drop it")
    if "reuse_cache_size" in set_ and not config.reuse:
        errors.append(f"reuse_cache_size={config.reuse_cache_size} has no effect with "
                      f"reuse=off (no operator timing is cached); turn reuse on or drop it")
    if errors:
        raise ValueError("; ".join(errors))

    found: list[str] = []
    policy = sched.policy if sched.policy != "auto" else _auto_policy(config.hardware)
    if ("max_num_batched_tokens" in set_ and policy not in ("chunked", "vllm-v1", None)
            and mem.gpu_memory_utilization is None):
        found.append(f"max_num_batched_tokens={sched.max_num_batched_tokens} has no effect: "
                     f"scheduling={policy!r} has no token budget (only 'chunked' and "
                     f"'vllm-v1' have one), and without gpu_memory_utilization no activation memory is "
                     f"sized from it; it is ignored")
    if tensor_parallel_degree(system) == 1:
        group = (f"a tensor-parallel degree of 1 (npu_num={system.npu_num}, "
                 f"npu_group={system.npu_group}, parallel={system.parallel!r})")
        if "collective" in set_:
            found.append(f"collective={system.collective!r} has no effect with {group}: "
                         f"there are no collectives; it is ignored")
        if "attention_placement" in set_:
            found.append(f"attention_placement={system.attention_placement!r} has no effect "
                         f"with {group}: each device computes all heads of all its "
                         f"requests either way; it is ignored")
    if "congestion" in set_ and system.npu_num == 1 and system.pim_type != "pool":
        found.append("congestion=True has no effect on one NPU (npu_num=1) without a PIM "
                     "pool: its only transfers, the KV store and load, never share a link; "
                     "it is ignored")
    if ("gpu_memory_utilization" in set_ and mem.num_kv_blocks is not None
            and system.pim_type == "none"):
        found.append(f"gpu_memory_utilization={mem.gpu_memory_utilization} has no effect "
                     f"with num_kv_blocks={mem.num_kv_blocks}, which sets the KV cache's "
                     f"size (it takes precedence); it is ignored")
    for message in found:
        warnings.warn(message, ConfigWarning, stacklevel=stacklevel)


__all__ = ["check_flag_effects", "tensor_parallel_degree"]
