"""What an instance needs from a model whose layers are not all alike.

Mixture-of-experts layers, DeepSeek's latent attention and layers of several
kinds (dense and MoE, full and sliding attention) run on one device, a
pipeline, tensor-parallel groups that split attention by heads (experts
split by width, :mod:`llmsim_nb.parallel.sharding`), or, for MoE models,
attention data parallelism (``attention_placement='data'``). Mixture-of-experts
layers also run on the heterogeneous NPU + PIM stack. Selective batching
(attention by requests) is not modelled for any of them, nor the NPU + PIM
stack for MLA or sliding layers; asking for those is an error naming the
model and what to change, never a silently different model.
"""

from __future__ import annotations

import numpy as np

from ..models.expert_routing import SkewedRouting, UniformRouting
from ..parallel.sharding import kv_heads_per_device

#: Stream of the run's seed that routes tokens to experts (other randomness,
#: e.g. traces, has its own generators).
ROUTING_STREAM = 0x6D6F65  # "moe"


def _features(model, pim: bool = False) -> list[str]:
    """What sets ``model`` apart from a plain decoder (``pim``: only what the
    NPU + PIM stack does not model; it runs mixture-of-experts layers)."""
    found = []
    if model.moe is not None and not pim:
        found.append("mixture-of-experts layers")
    if model.mla is not None:
        found.append("multi-head latent attention")
    if model.layer_types and len(set(model.layer_types)) > 1:
        found.append("layers of full and sliding attention")
    return found


def check_layer_kinds(model, layout, has_pim: bool,
                      expert_parallel: bool = False, engine_name: str = "") -> None:
    """Refuse parallel layouts (and engines) these models are not modelled under."""
    if engine_name == "profiled" and ("sliding" in model.layer_types or model.kv_dtype):
        # Its tables are looked up by KV heads recovered from an attention op's
        # bytes, which a window or a KV data type other than dtype_bytes changes.
        raise ValueError(f"model {model.name!r} has sliding-window layers or a KV data type "
                         f"of its own; the profiled engine's attention tables do not cover "
                         f"them (allowed: a gpu hardware preset)")
    if layout.attention == "data":
        check_data_parallel(model, layout, expert_parallel, has_pim)
    if expert_parallel:
        if model.moe is None:
            raise ValueError(f"enable_expert_parallel=True needs a mixture-of-experts model; "
                             f"{model.name!r} has no experts")
        if layout.tp == 1:
            raise ValueError("enable_expert_parallel=True needs tensor parallelism (experts "
                             "are spread over the ranks of a tensor-parallel group): set "
                             "npu_num to a multiple of npu_group above it")
        if model.moe.num_experts % layout.tp:
            raise ValueError(f"enable_expert_parallel=True: the {model.moe.num_experts} "
                             f"experts of {model.name!r} do not split evenly over "
                             f"{layout.tp} ranks (allowed: a tensor-parallel degree "
                             f"dividing {model.moe.num_experts})")
    found = _features(model)
    if not found:
        return
    what = " and ".join(found)
    if layout.tp > 1 and layout.attention == "requests":
        raise ValueError(f"model {model.name!r} has {what}; tensor parallelism of such "
                         f"models splits attention by heads (attention_placement='heads'; "
                         f"tp={layout.tp} must divide the {model.num_heads} heads), not by "
                         f"requests")
    refused = _features(model, pim=True)
    if has_pim and refused:
        raise ValueError(f"model {model.name!r} has {' and '.join(refused)}; the NPU + PIM "
                         f"stack does not model them yet (allowed: pim_type='none')")


def check_data_parallel(model, layout, expert_parallel: bool, has_pim: bool = False) -> None:
    """Refuse attention data parallelism where it is not modelled: it is the
    data-parallel attention of MoE serving (vLLM, SGLang), so it needs routed
    experts spread over the group (``enable_expert_parallel``) and a group of
    more than one rank."""
    if model.moe is None:
        raise ValueError(f"attention_placement='data' (attention data parallelism) needs a "
                         f"mixture-of-experts model; {model.name!r} has no experts (allowed "
                         f"for it: heads, requests)")
    if not expert_parallel:
        raise ValueError("attention_placement='data' needs enable_expert_parallel=True: "
                         "the data-parallel ranks share the routed experts by expert "
                         "parallelism")
    if layout.tp == 1:
        raise ValueError("attention_placement='data' needs a group of more than one rank "
                         "(npu_num / npu_group > 1): one rank is plain serving")
    if has_pim:
        raise ValueError("attention_placement='data' is not modelled on the NPU + PIM stack "
                         "(allowed there: heads, requests; or pim_type='none')")


def expert_routing(model, config) -> tuple:
    """The routing model and generator of an MoE model (``(None, None)`` else):
    ``config.expert_routing`` (uniform, or skewed with ``expert_skew``), drawn
    from the run's seed (stream ``ROUTING_STREAM``). A notebook may set
    ``instance.stack.routing`` to another, e.g. a measured load table
    (:class:`~llmsim_nb.models.expert_routing.TableRouting`).

    Raises
    ------
    ValueError
        A routing other than the default asked of a model without experts.
    """
    moe = model.moe
    if moe is None:
        if config.expert_routing != "uniform":
            raise ValueError(f"expert_routing={config.expert_routing!r} has no effect: model "
                             f"{model.name!r} has no mixture-of-experts layers; drop it")
        return None, None
    E, k = moe.num_experts, moe.num_experts_per_token
    routing = (SkewedRouting(E, k, config.expert_skew) if config.expert_routing == "skewed"
               else UniformRouting(E, k))
    seed = int(config.seed)
    return routing, np.random.default_rng([seed & 0xFFFFFFFF, seed >> 32, ROUTING_STREAM])


def kv_replication(model, layout) -> int:
    """How many ranks of a tensor-parallel group hold the same KV: 1 when the
    KV heads split over the ranks (or attention is placed by request), ``tp``
    for MLA's one latent, ``tp / num_kv_heads`` for GQA with fewer KV heads
    than ranks (each replicated over its query group, as vLLM does). A rank
    moves its KV to and from the host in that proportion."""
    tp = layout.tp
    if tp == 1 or layout.attention != "heads":
        return 1
    if model.mla is not None:
        return tp
    return kv_heads_per_device(model.num_heads, model.num_kv_heads, tp) * tp // model.num_kv_heads
