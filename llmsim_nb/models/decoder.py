"""decoder_template: a :class:`~.spec.ModelSpec`'s layers as operator recipes.

The pre-norm decoder of GPT/LLaMA and its descendants: per layer an input
norm, attention (grouped-query or DeepSeek's latent attention, full or over a
sliding window), a residual add, a norm, the FFN (dense, or mixture of
experts) and a residual add; an embedding before the layers and a final norm
and LM head after. Cost conventions are in :mod:`.template`.
"""

from __future__ import annotations

from .dtypes import element_bytes
from .ops import OpKind
from .spec import ModelSpec
from .template import ACT_FLOPS, NORM_FLOPS, BlockTemplate, OpTemplate

# Router scoring per expert score: softmax (max, subtract, exp, sum, divide) ~ 5;
# sigmoid (exp, add, divide, and DeepSeek's bias add) ~ 4.
ROUTER_FLOPS = {"softmax": 5.0, "sigmoid": 4.0}


def decoder_template(spec: ModelSpec) -> BlockTemplate:
    """The operator recipe of ``spec``'s layers (pre-norm decoder, as GPT/LLaMA).

    A model whose layers differ gets one op list holding every kind's ops and
    a mask per kind (see :class:`BlockTemplate`); see :func:`_attention_ops`
    and :func:`_ffn_ops` for MLA, sliding windows and experts.
    """
    d = spec.hidden_size
    norm_params = 2 * d if spec.norm == "layernorm" else d
    nf = NORM_FLOPS[spec.norm]
    embedding = (OpTemplate("embed", OpKind.EMBEDDING, width=d,
                            num_inputs=2 if spec.position == "learned" else 1,
                            flops_per_element=1.0 if spec.position == "learned" else 0.0),)
    kinds = spec.layer_kinds()
    windows = sorted({kind for kind, _ in kinds})      # "full" before "sliding"
    ffns = sorted({moe for _, moe in kinds})           # dense (False) before MoE (True)
    ops: list[tuple[OpTemplate, object]] = [  # (op, which layers run it: None = all)
        (OpTemplate("input_norm", OpKind.NORM, width=d, flops_per_element=nf,
                    param_elements=norm_params), None)]
    ops += _attention_ops(spec, windows)
    ops += [(OpTemplate("attn_residual", OpKind.ELEMENTWISE, width=d, num_inputs=2), None),
            (OpTemplate("post_attn_norm", OpKind.NORM, width=d, flops_per_element=nf,
                        param_elements=norm_params), None)]
    ops += _ffn_ops(spec, ffns)
    ops.append((OpTemplate("ffn_residual", OpKind.ELEMENTWISE, width=d, num_inputs=2), None))
    head = (
        OpTemplate("final_norm", OpKind.NORM, width=d, flops_per_element=nf,
                   param_elements=norm_params),
        OpTemplate("lm_head", OpKind.GEMM, weight_k=d, weight_n=spec.vocab_size),
    )
    block = tuple(op for op, _ in ops)
    distinct = list(dict.fromkeys(kinds))
    if len(distinct) == 1:
        return BlockTemplate(spec.name, embedding, block, head, spec.num_layers,
                             spec.dtype_bytes)
    masks = tuple(tuple(when is None or when in kind for _, when in ops) for kind in distinct)
    return BlockTemplate(spec.name, embedding, block, head, spec.num_layers, spec.dtype_bytes,
                         layer_kinds=masks,
                         layer_pattern=tuple(distinct.index(k) for k in kinds))


def _bytes_if_other(spec: ModelSpec, dtype: str) -> float:
    """Bytes per element of ``dtype`` where it differs from ``dtype_bytes`` (else 0)."""
    size = element_bytes(dtype)
    return 0.0 if size == spec.dtype_bytes else size


def _attention_ops(spec: ModelSpec, windows: list[str]) -> list[tuple[OpTemplate, object]]:
    """Projections, rotary, q/k norms and one attention triple per window kind.

    Sliding layers' ops are named ``swa_*`` (their own rows in results) and
    carry the window. MLA is timed in its absorbed form (FlashMLA, SGLang and
    vLLM decode): queries are projected into the latent space per head
    (``q_absorb``), attention runs over the cached latent + rotary key of
    ``kv_lora_rank + qk_rope_head_dim`` elements with one shared KV head, and
    the latent output is projected to values per head (``v_absorb``).
    vLLM prefills MLA in the decompressed form instead; the absorbed FLOPs
    are larger for long prompts (a simplification, named in docs/models.md).
    """
    d, h = spec.hidden_size, spec.num_heads
    wb = _bytes_if_other(spec, spec.dtypes[0])
    kvb = _bytes_if_other(spec, spec.dtypes[2])
    bias = spec.bias
    ops: list[tuple[OpTemplate, object]] = []
    mla = spec.mla
    if mla is not None:
        qk, rope, lora = mla.qk_head_dim, mla.qk_rope_head_dim, mla.kv_lora_rank
        if mla.q_lora_rank:
            ops += [OpTemplate("q_a_proj", OpKind.GEMM, weight_k=d, weight_n=mla.q_lora_rank,
                               weight_bytes=wb, tp_role="replicate"),
                    OpTemplate("q_a_norm", OpKind.NORM, width=mla.q_lora_rank,
                               flops_per_element=NORM_FLOPS["rmsnorm"],
                               param_elements=mla.q_lora_rank),
                    OpTemplate("q_b_proj", OpKind.GEMM, weight_k=mla.q_lora_rank,
                               weight_n=h * qk, weight_bytes=wb, tp_role="column")]
        else:
            ops.append(OpTemplate("q_proj", OpKind.GEMM, weight_k=d, weight_n=h * qk,
                                  weight_bytes=wb))
        ops += [OpTemplate("kv_a_proj", OpKind.GEMM, weight_k=d, weight_n=lora + rope,
                           weight_bytes=wb, tp_role="replicate"),
                OpTemplate("kv_a_norm", OpKind.NORM, width=lora,
                           flops_per_element=NORM_FLOPS["rmsnorm"], param_elements=lora),
                # Rotary on every head's query part (split by heads under TP)
                # and on the one shared key part (replicated).
                OpTemplate("rope", OpKind.ELEMENTWISE, width=h * rope, flops_per_element=3.0,
                           tp_role="heads"),
                OpTemplate("k_rope", OpKind.ELEMENTWISE, width=rope, flops_per_element=3.0),
                OpTemplate("q_absorb", OpKind.GEMM, weight_k=mla.qk_nope_head_dim,
                           weight_n=lora, num_batches=h, weight_bytes=wb, tp_role="heads")]
        score = dict(num_heads=h, num_kv_heads=1, head_dim=lora + rope, kv_bytes=kvb)
        # The context product reuses the latent the score product read (one
        # fused kernel): its cache read is not counted twice.
        context = dict(score, head_dim=lora, kv_read=0.0)
        tail = [OpTemplate("v_absorb", OpKind.GEMM, weight_k=lora, weight_n=mla.v_head_dim,
                           num_batches=h, weight_bytes=wb, tp_role="heads"),
                OpTemplate("out_proj", OpKind.GEMM, weight_k=h * mla.v_head_dim, weight_n=d,
                           weight_bytes=wb, tp_role="row")]
    else:
        q, kv, hd = spec.q_dim, spec.kv_dim, spec.head_dim
        ops.append(OpTemplate("qkv_proj", OpKind.GEMM, weight_k=d, weight_n=q + 2 * kv,
                              param_elements=(q + 2 * kv) if bias else 0, weight_bytes=wb))
        if spec.qk_norm:  # per-head RMSNorm of q and k, one scale vector each
            ops.append(OpTemplate("qk_norm", OpKind.NORM, width=q + kv,
                                  flops_per_element=NORM_FLOPS["rmsnorm"],
                                  param_elements=2 * hd, tp_role="heads"))
        if spec.position == "rope":
            # Rotary embedding on q and k: 3 FLOPs (2 mul + 1 add) per element.
            ops.append(OpTemplate("rope", OpKind.ELEMENTWISE, width=q + kv,
                                  flops_per_element=3.0))
        score = context = dict(num_heads=h, num_kv_heads=spec.num_kv_heads, head_dim=hd,
                               kv_bytes=kvb)
        tail = [OpTemplate("out_proj", OpKind.GEMM, weight_k=q, weight_n=d,
                           param_elements=d if bias else 0, weight_bytes=wb)]
    out: list[tuple[OpTemplate, object]] = [(op, None) for op in ops]
    for kind in windows:
        prefix, window = ("attn", 0) if kind == "full" else ("swa", spec.sliding_window)
        # gpt-oss's learned sink logit per head: parameters of the softmax.
        sinks = h if spec.attention_sinks else 0
        out += [(OpTemplate(f"{prefix}_score", OpKind.ATTN_SCORE, window=window, **score), kind),
                (OpTemplate(f"{prefix}_softmax", OpKind.SOFTMAX, window=window,
                            param_elements=sinks, **score), kind),
                (OpTemplate(f"{prefix}_context", OpKind.ATTN_CONTEXT, window=window,
                            **context), kind)]
    return out + [(op, None) for op in tail]


def _ffn_ops(spec: ModelSpec, ffns: list[bool]) -> list[tuple[OpTemplate, object]]:
    """The dense FFN (layers that are not MoE) and the MoE ops (those that are).

    An MoE layer: the router's gate GEMM and a top-k vector op over the
    expert scores (scoring + one compare per score), the shared experts as
    one fused FFN, the routed experts' up and down GEMMs (each one grouped
    GEMM over the experts with tokens), their activation over the ``top_k``
    routed rows of every token, and the weighted combine of ``top_k`` outputs.
    """
    d, f = spec.hidden_size, spec.ffn_hidden_size
    gated = spec.activation == "swiglu"
    wb = _bytes_if_other(spec, spec.dtypes[0])
    bias = spec.bias
    ops: list[tuple[OpTemplate, object]] = []
    if False in ffns:
        up_n = 2 * f if gated else f
        ops += [(OpTemplate("ffn_up", OpKind.GEMM, weight_k=d, weight_n=up_n,
                            param_elements=up_n if bias else 0, weight_bytes=wb), False),
                (OpTemplate("ffn_act", OpKind.ACTIVATION, width=f, num_inputs=2 if gated else 1,
                            flops_per_element=ACT_FLOPS[spec.activation]), False),
                (OpTemplate("ffn_down", OpKind.GEMM, weight_k=f, weight_n=d,
                            param_elements=d if bias else 0, weight_bytes=wb), False)]
    if True in ffns:
        moe = spec.moe
        E, k, fe = moe.num_experts, moe.num_experts_per_token, moe.expert_ffn_size
        eb = _bytes_if_other(spec, spec.dtypes[1])
        act = dict(num_inputs=2 if gated else 1, flops_per_element=ACT_FLOPS[spec.activation])
        up_e = 2 * fe if gated else fe
        ops += [(OpTemplate("router_gate", OpKind.GEMM, weight_k=d, weight_n=E,
                            param_elements=E if moe.router_bias else 0, tp_role="replicate"),
                 True),
                (OpTemplate("router_topk", OpKind.ELEMENTWISE, width=E,
                            flops_per_element=ROUTER_FLOPS[moe.router_scoring] + 1.0), True)]
        if moe.num_shared_experts:
            fs = moe.num_shared_experts * moe.shared_expert_ffn_size
            ops += [(OpTemplate("shared_up", OpKind.GEMM, weight_k=d,
                                weight_n=2 * fs if gated else fs, weight_bytes=eb,
                                tp_role="column"), True),
                    (OpTemplate("shared_act", OpKind.ACTIVATION, width=fs, **act), True),
                    (OpTemplate("shared_down", OpKind.GEMM, weight_k=fs, weight_n=d,
                                weight_bytes=eb, tp_role="partial"), True)]
        ops += [(OpTemplate("expert_up", OpKind.GEMM, weight_k=d, weight_n=up_e,
                            param_elements=up_e if moe.expert_bias else 0, num_experts=E,
                            weight_bytes=eb, tp_role="column"), True),
                # Over the routed rows (a rank's own under expert parallelism).
                (OpTemplate("expert_act", OpKind.ACTIVATION, width=fe, num_experts=E, **act),
                 True),
                (OpTemplate("expert_down", OpKind.GEMM, weight_k=fe, weight_n=d,
                            param_elements=d if moe.expert_bias else 0, num_experts=E,
                            weight_bytes=eb, tp_role="row"), True),
                (OpTemplate("expert_combine", OpKind.ELEMENTWISE, width=d, num_inputs=k,
                            flops_per_element=2.0 * k), True)]
    return ops
