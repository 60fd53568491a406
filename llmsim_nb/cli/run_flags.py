"""The flags of ``llmsim run``: names, types and help texts (see :mod:`.run`).

Kept apart from the command so the list reads as one table; ``llmsim validate``
takes :data:`RUN_FLAGS` too.
"""

from __future__ import annotations

#: (flag, type or None for a switch, help) of every ``llmsim run`` flag.
RUN_FLAGS: list[tuple[str, type | None, str]] = [
    ("model_name", str, "model name, e.g. gpt3-6.7b, llama-7b, llama-2-70b (llmsim list "
                        "models)"),
    ("hardware", str, "engine hardware preset (npu-128x128 is the paper's NPU; "
                      "llmsim list hardware)"),
    ("npu_num", int, "number of NPUs"),
    ("npu_group", int, "pipeline groups"),
    ("parallel", str, "tensor | pipeline | hybrid"),
    ("npu_mem", float, "device memory per NPU in GiB (default: the preset's)"),
    ("max_batch", int, "most requests per batch; 0 = unlimited"),
    ("batch_delay", float, "seconds a request waits after arrival before it can be batched"),
    ("scheduling", str, "orca | vllm | chunked | vllm-v1 (vLLM V1: token budget, prefix "
                        "caching, preemption by recompute)"),
    ("max_num_batched_tokens", int, "token budget per iteration (chunked, vllm-v1)"),
    ("enable_prefix_caching", str, "on | off: automatic prefix caching (vllm-v1; default on "
                                   "there)"),
    ("enable_chunked_prefill", str, "on | off: vllm-v1 splits prompts over iterations "
                                    "(default on)"),
    ("long_prefill_token_threshold", int, "vllm-v1: most tokens per request per iteration; "
                                          "0 = no cap"),
    ("scheduler_reserve_full_isl", str, "on | off: vllm-v1 admits a waiting request only when "
                                        "the KV blocks of its whole prompt are free (vLLM "
                                        "0.19's default; off here)"),
    ("scheduling_policy", str, "fcfs | priority: vllm-v1's admission and preemption order"),
    ("preemption_mode", str, "recompute | swap: vllm-v1 recomputes by default and can swap "
                             "to host; orca, vllm and chunked always swap"),
    ("host_bandwidth", float, "device-to-host link in B/s (KV swap, host KV tier); 63e9 is "
                              "PCIe 5.0 x16"),
    ("host_latency", float, "fixed latency of one host transfer in s"),
    ("kv_offload_gib", float, "host-memory KV tier in GiB for evicted cached blocks "
                              "(vllm-v1 with prefix caching)"),
    ("power", str, "on | off: power model (energy per device, J/token, cost; docs/power.md)"),
    ("power_cap_w", float, "power cap per GPU in W (lowers the sustained clock)"),
    ("device_price_per_hour", float, "USD per device-hour"), ("carbon_g_per_kwh", float, "g/kWh"),
    ("max_model_len", int, "longest request served, prompt + output tokens (default: the "
                           "model's context length)"),
    ("kv_manage", str, "vllm (paged, on demand) | max (reserve the maximum length)"),
    ("block_size", int, "tokens per KV block"),
    ("gpu_memory_utilization", float,
     "fraction of device memory for weights + activations + KV (as vLLM)"),
    ("num_kv_blocks", int, "explicit KV blocks (overrides gpu_memory_utilization)"),
    ("pim_type", str, "none | local | pool; local/pool also bring the original's PIM "
                      "defaults for flags left unset: micro_batches 1, attention_placement "
                      "requests, and for local pim_channels = npu_mem / 1 GiB "
                      "(docs/original-flags.md)"),
    ("sub_batch", None, "NeuPIMs sub-batch interleaving"),
    ("pim_hardware", str, "PIM device preset (neupims-hbm2 | newton-hbm2)"),
    ("pim_channels", int, "channels per PIM device (0 = npu_mem / 1 GiB with --npu_mem and "
                          "local PIM, as the original, else the preset's 32); 1 GiB of KV "
                          "each"),
    ("pim_num", int, "PIM devices in the pool (pim_type pool; 0 = one per NPU)"),
    ("pim_mapping", str, "decode-attention | attention | fastest (operator mapping)"),
    ("num_sub_batches", int, "sub-batches with --sub_batch"),
    ("sub_batch_criterion", str, "memory | compute: what sub-batches balance"),
    ("dataset", str, "trace file (TSV/CSV/JSONL or Azure CSV); default: packaged trace, or "
                     "a generated one with --num_requests ..."),
    ("network", str, "network topology file or preset (e.g. gpu_n4.json; llmsim list "
                     "networks)"),
    ("micro_batches", int, "most micro-batches per iteration (pipeline); 0 = one per stage "
                           "(1 with --pim_type local/pool, as the original)"),
    ("attention_placement", str, "auto | heads | requests (selective batching) | data "
                                 "(attention data parallelism: MoE, --enable_expert_parallel);"
                                 " auto is requests with --pim_type local/pool"),
    ("collective", str, "auto | ring | direct | halving_doubling"),
    ("congestion", None, "congestion-aware network (shared links slow transfers)"),
    ("enable_expert_parallel", None, "MoE models: ranks hold whole experts (expert "
                                     "parallelism) instead of a slice of each"),
    ("expert_placement", str, "contiguous | round_robin: experts on ranks under "
                              "--enable_expert_parallel"),
    ("expert_routing", str, "uniform | skewed: how MoE tokens pick experts"),
    ("expert_skew", float, "Zipf exponent of expert popularity with --expert_routing skewed"),
    ("gen", None, "skip prefill: prompts start in the KV cache"),
    ("fast_run", None, "the original's compile bypass: keep the reuse cache on disk between "
                       "runs ($LLMSIM_CACHE_DIR, default ~/.cache/llmsim_nb)"),
    ("reuse", str, "on | off: reuse operator timings (results identical)"),
    ("reuse_cache_size", int, "most cached operator timings"),
    ("npu_mode", str, "analytical | detailed (tile-level GEMM schedule, slower)"),
    ("serving_stack", str, "host costs of the serving engine: auto | none | vllm-v1 | vllm-v0 | "
     "sglang | trtllm (llmsim list serving-stacks)"),
    ("seed", int, "random seed (of generated traces: --num_requests ...)"),
    ("config", str, "YAML file of flag names and values"),
    ("output", str, "write PREFIX-throughput.tsv, -simulation-time.tsv, -requests.csv, .nc"),
]


#: The workload flags of ``llmsim run`` (not of ``validate`` or a ``--config`` file):
#: (flag, type or None for a switch, help). The defaults written here are
#: ``WorkloadRecipe``'s (tests/test_cli_workload.py checks that they agree).
WORKLOAD_FLAGS: list[tuple[str, type | None, str]] = [
    ("num_requests", int, "generate N requests instead of reading --dataset (default 100)"),
    ("arrival", str, "arrival process of generated requests: poisson | gamma | constant "
                     "(evenly spaced) (default poisson)"),
    ("rate", float, "mean arrival rate of generated requests in req/s (default 10)"),
    ("cv", float, "--arrival gamma only: coefficient of variation of the gaps; 0 = evenly "
                  "spaced, 1 = Poisson-like, > 1 = burstier (default 1)"),
    ("lengths", str, "prompt and output lengths of generated requests: sharegpt | alpaca | "
                     "fixed:IN,OUT | uniform:LO,HI (prompts and outputs each from LO..HI) | "
                     "uniform:PLO,PHI,OLO,OHI (prompts from PLO..PHI, outputs from "
                     "OLO..OHI); ranges inclusive (default sharegpt)"),
    ("limit", int, "simulate at most the first N requests of the trace"),
    ("drop_too_long", None, "drop the requests longer than max_model_len (default: the "
                            "model's context) instead of refusing the trace; stderr says "
                            "how many"),
    ("sort", None, "sort a --dataset file whose arrivals go backwards (stable, by arrival) "
                   "instead of refusing it"),
    ("shared_prefix", str, "generate a shared-system-prompt workload (inference-perf's "
                           "shared_prefix): NUM_GROUPS,PROMPTS_PER_GROUP,SYSTEM_PROMPT_LEN,"
                           "QUESTION_LEN,OUTPUT_LEN, at --rate req/s (--arrival, --cv)"),
    ("multi_turn", str, "serve closed-loop chat sessions: NUM_SESSIONS,TURNS,USER_TOKENS,"
                        "OUTPUT_TOKENS,THINK_TIME_S; turn k+1 (the whole conversation so far "
                        "plus a new message) arrives a think time after turn k finished; "
                        "sessions start at --rate per second"),
    ("slo_ttft", float, "TTFT objective in seconds: the summary adds goodput (requests "
                        "meeting every given SLO)"),
    ("slo_tpot", float, "TPOT objective in seconds, for goodput"),
]
#: The workload flags that generate a trace (``WorkloadRecipe``'s fields).
GENERATE_FLAGS = ("num_requests", "arrival", "rate", "cv", "lengths")


__all__ = ["GENERATE_FLAGS", "RUN_FLAGS", "WORKLOAD_FLAGS"]
