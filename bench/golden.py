"""Golden digests: did a change move any simulated number?

    python bench/golden.py record PATH     # digests of the current tree -> PATH (JSON)
    python bench/golden.py check PATH      # compare the current tree against PATH

For speed work: every variable of the run Dataset of a fixed set of
configurations (schedulers, prefix caching, preemption modes, PIM, pipeline and
tensor parallelism, MoE, serving stack, power, a co-located and a disaggregated
cluster, sessions) is hashed (SHA-256 of its values' bytes, dtype and shape).
``check`` prints every configuration and variable whose digest differs; a
change meant to be a pure speed-up must print none. So is what
``summarize()`` reports of each. Variables about the
simulator's own wall time (names containing ``wall``) are skipped: they differ
from run to run. Exit status 1 when anything differs. Not a test: the digests
are of one tree, recorded before a change and checked after it.
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings

import numpy as np

GPU = dict(model_name="llama-3.1-8b", hardware="h100-sxm")
#: name -> (flags, number of requests, rate in req/s): ShareGPT-like lengths, or with a
#: negative number a shared-prefix workload (8 groups, 120-token system prompts, 40-token
#: questions, 30-token outputs).
RUNS = {
    "orca-npu": (dict(model_name="gpt3-6.7b", hardware="npu-128x128", scheduling="orca"), 60, 20.0),
    "vllm-npu-tp4": (dict(model_name="gpt3-6.7b", hardware="npu-128x128", scheduling="vllm",
                          npu_num=4, parallel="tensor"), 60, 20.0),
    "vllm-npu-pp": (dict(model_name="gpt3-6.7b", hardware="npu-128x128", scheduling="vllm",
                         npu_num=4, npu_group=2, parallel="hybrid"), 60, 20.0),
    "pim-local": (dict(model_name="gpt3-6.7b", hardware="npu-128x128", scheduling="vllm",
                       pim_type="local", npu_num=4, parallel="tensor"), 40, 10.0),
    "pim-pool-subbatch": (dict(model_name="gpt3-6.7b", hardware="npu-128x128", scheduling="vllm",
                               pim_type="pool", sub_batch=True, npu_num=2, parallel="tensor"),
                          40, 10.0),
    "chunked-npu": (dict(model_name="gpt3-6.7b", hardware="npu-128x128", scheduling="chunked"),
                    60, 20.0),
    "v1-h100": (dict(GPU, scheduling="vllm-v1"), 300, 50.0),
    "v1-h100-prefix": (dict(GPU, scheduling="vllm-v1"), -300, 50.0),
    "v1-h100-prefix-nocache": (dict(GPU, scheduling="vllm-v1", enable_prefix_caching="off"),
                               -300, 50.0),
    "v1-small-memory-recompute": (dict(GPU, scheduling="vllm-v1", num_kv_blocks=120), -200, 80.0),
    "v1-small-memory-swap": (dict(GPU, scheduling="vllm-v1", num_kv_blocks=120,
                                  preemption_mode="swap"), -200, 80.0),
    "v1-offload-threshold-reserve": (dict(GPU, scheduling="vllm-v1", num_kv_blocks=160,
                                          kv_offload_gib=2.0, long_prefill_token_threshold=64,
                                          scheduler_reserve_full_isl="on"), -200, 80.0),
    "v1-power-tp2": (dict(GPU, scheduling="vllm-v1", npu_num=2, parallel="tensor", power="on"),
                     150, 40.0),
    "moe-ep": (dict(model_name="qwen3-30b-a3b", hardware="h100-sxm", scheduling="vllm-v1",
                    npu_num=2, parallel="tensor", enable_expert_parallel=True), 80, 20.0),
}


def _digest(ds) -> dict[str, str]:
    from llmsim_nb.results.dataset import summarize

    summary = summarize(ds)
    out = {"summarize()": hashlib.sha256(repr(sorted(
        (k, v) for k, v in summary.items() if "wall" not in k)).encode()).hexdigest()[:16]}
    for name in sorted(ds.variables):
        if "wall" in name:
            continue
        values = np.asarray(ds[name].values)
        h = hashlib.sha256(f"{values.dtype}{values.shape}".encode())
        if values.dtype == object:
            h.update(repr(values.tolist()).encode())
        else:
            h.update(np.ascontiguousarray(values).tobytes())
        out[name] = h.hexdigest()[:16]
    return out


def _single(flags: dict, n: int, rate: float):
    from llmsim_nb import SimConfig, Simulator
    from llmsim_nb.workload.generators import synthetic_trace
    from llmsim_nb.workload.shared_prefix import shared_prefix_trace

    if n > 0:
        trace = synthetic_trace(np.random.default_rng(1), n, rate)
    else:
        trace = shared_prefix_trace(8, -n // 8, 120, 40, 30, rate=rate,
                                    rng=np.random.default_rng(1))
    sim = Simulator(SimConfig.from_flags(**flags), trace)
    return sim.run()


def _cluster(disaggregated: bool):
    from llmsim_nb import SimConfig
    from llmsim_nb.cluster import Cluster, ClusterConfig, InstanceGroup
    from llmsim_nb.workload.generators import synthetic_trace

    config = SimConfig.from_flags(**GPU, scheduling="vllm-v1")
    groups = ((InstanceGroup("prefill", config, 1, "prefill"),
               InstanceGroup("decode", config, 3, "decode")) if disaggregated
              else (InstanceGroup("mixed", config, 4, "mixed"),))
    cluster = Cluster(ClusterConfig(groups, router="least_outstanding",
                                    decode_router="least_outstanding"))
    cluster.submit_trace(synthetic_trace(np.random.default_rng(2), 800, 400.0))
    cluster.advance()
    return cluster.results()


def _sessions():
    from llmsim_nb import SimConfig
    from llmsim_nb.instance import Instance
    from llmsim_nb.instance.session_run import SessionRun
    from llmsim_nb.system import build_instance
    from llmsim_nb.workload.sessions import multi_turn_sessions

    sessions = multi_turn_sessions(12, 3, (20, 120), (10, 60), 1.0, session_rate=2.0,
                                   system_prompt_len=100, rng=np.random.default_rng(3))
    instance = Instance(build_instance(SimConfig.from_flags(**GPU, scheduling="vllm-v1"),
                                       longest_request=4096))
    return SessionRun(instance, sessions).run()


def digests() -> dict[str, dict[str, str]]:
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (flags, n, rate) in RUNS.items():
            out[name] = _digest(_single(flags, n, rate))
            print(f"  {name}: {len(out[name])} variables", flush=True)
        out["cluster-colocated"] = _digest(_cluster(False))
        out["cluster-4p12d-like"] = _digest(_cluster(True))
        out["sessions"] = _digest(_sessions())
    return out


def main() -> int:
    if len(sys.argv) != 3 or sys.argv[1] not in ("record", "check"):
        print(__doc__)
        return 2
    mode, path = sys.argv[1], sys.argv[2]
    now = digests()
    if mode == "record":
        with open(path, "w") as f:
            json.dump(now, f, indent=1, sort_keys=True)
        print(f"recorded {len(now)} configurations to {path}")
        return 0
    with open(path) as f:
        then = json.load(f)
    bad = 0
    for name in sorted(set(then) | set(now)):
        a, b = then.get(name, {}), now.get(name, {})
        diff = [v for v in sorted(set(a) | set(b)) if a.get(v) != b.get(v)]
        if diff:
            bad += 1
            print(f"DIFFERS {name}: {', '.join(diff)}")
    print(f"{len(now)} configurations, {bad} differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
