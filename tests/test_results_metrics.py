"""summarize's figures and the prefix-caching / preemption variables, on hand-built results.

Every number is worked out by hand from three requests and four iterations
(times in exact binary fractions, so the figures compare with ``==``):

===  =========  ===========  ===========  =======  =====  ====  ====  ====================
req  arrival_at first_token  finished_at  outputs  TTFT   TPOT  E2E   gaps (ITL)
===  =========  ===========  ===========  =======  =====  ====  ====  ====================
0    0.0        0.5          2.5          5        0.5    0.5   2.5   0.25 0.25 0.5 1.0
1    1.0        1.25         1.25         1        0.25   NaN   0.25  (none)
2    1.0        2.0          4.0          3        1.0    1.0   3.0   1.0 1.0
===  =========  ===========  ===========  =======  =====  ====  ====  ====================

Iterations end at 0.5, 1.25, 2.0, 4.0 s (simulated time 4 s); they look up
16, 0, 32, 16 prefix tokens and find 0, 0, 24, 8 cached, 0, 0, 16, 0 of them in the
host tier; they preempt 0, 0, 1, 1; they store 0, 0, 3072, 1024 B to host memory and
load 0, 0, 2048, 0 B from it.
"""

import math

import numpy as np
import pytest
import xarray as xr

from llmsim_nb import SimConfig, Simulator
from llmsim_nb.models.ops import BatchShape
from llmsim_nb.results import (ITERATION_VARS, METRIC_UNITS, VARIABLES, ArrayResults,
                               IterationRecord, Recorder, metric_definitions, summarize)
from llmsim_nb.results import dataset as dataset_module
from llmsim_nb.results.dataset import iteration_dataset, request_arrays
from llmsim_nb.scheduler.plan import IterationPlan
from llmsim_nb.scheduler.request_state import RequestTable
from llmsim_nb.workload import Trace

NAN = math.nan
ITERATIONS = {
    "t_end": np.array([0.5, 1.25, 2.0, 4.0]),
    "num_prefill_tokens": np.array([16, 0, 8, 16]),
    "num_decode_tokens": np.array([0, 2, 2, 3]),
    "kv_usage": np.array([0.25, 0.5, 0.75, 0.5]),
    "num_evicted": np.array([0, 0, 0, 0]),
    "num_prefix_query_tokens": np.array([16, 0, 32, 16]),
    "num_prefix_cached_tokens": np.array([0, 0, 24, 8]),
    "num_host_cached_tokens": np.array([0, 0, 16, 0]),
    "num_preempted": np.array([0, 0, 1, 1]),
    "evicted_bytes": np.array([0.0, 0.0, 3072.0, 1024.0]),
    "reloaded_bytes": np.array([0.0, 0.0, 2048.0, 0.0]),
}
HOST_VARS = ("num_host_cached_tokens", "evicted_bytes", "reloaded_bytes")
ARRIVAL, FIRST, FINISHED = [0.0, 1.0, 1.0], [0.5, 1.25, 2.0], [2.5, 1.25, 4.0]
OUTPUTS = [5, 1, 3]
GAPS = [0.25, 0.25, 0.5, 1.0, 1.0, 1.0]


def requests(arrival=ARRIVAL, first=FIRST, finished=FINISHED, outputs=OUTPUTS):
    arrival, first, finished = (np.array(x, dtype=float) for x in (arrival, first, finished))
    outputs = np.array(outputs)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(outputs > 1, (finished - first) / np.maximum(outputs - 1, 1), NAN)
    return {"arrival_at": arrival, "first_token_at": first, "finished_at": finished,
            "ttft": first - arrival, "tpot": tpot, "e2e_latency": finished - arrival,
            "num_output_tokens": outputs}


def arrays(gaps=True, **kw):
    out = {**ITERATIONS, **requests(**kw)}
    if gaps:
        out["inter_token_latency"] = np.array(GAPS)
    return out


def as_array_results(data):
    sizes = {"iteration": len(data["t_end"]), "request": len(data["arrival_at"])}
    return ArrayResults(data, sizes, {})


def as_dataset(data):
    dims = {name: ("token_gap" if name == "inter_token_latency" else
                   "iteration" if len(v) == 4 and name in ITERATIONS else "request")
            for name, v in data.items()}
    return xr.Dataset({name: ((dims[name],), v, {"units": VARIABLES[name][0],
                                                  "long_name": VARIABLES[name][1]})
                       for name, v in data.items()})


@pytest.fixture(params=["arrays", "dataset"])
def make(request):
    return as_array_results if request.param == "arrays" else as_dataset


def test_every_new_figure_by_hand(make):
    s = summarize(make(arrays()))
    assert s["simulated_time"] == 4.0 and s["num_finished"] == 3
    assert s["itl_mean"] == 4.0 / 6
    assert s["itl_p50"] == 0.75          # halfway between the 3rd (0.5) and 4th (1.0) gap
    assert s["itl_p99"] == 1.0
    assert s["prefix_hit_rate"] == 32 / 64 == 0.5   # sum cached / sum queried, not a mean
    assert s["num_cached_tokens"] == 32 and s["num_preemptions"] == 2
    assert s["request_throughput"] == 3 / 4.0
    assert s["output_throughput"] == (5 + 1 + 3) / 4.0
    assert math.isnan(s["goodput_fraction"]) and math.isnan(s["goodput"])  # no SLO given


def test_the_host_tier_figures_by_hand(make):
    s = summarize(make(arrays()))
    assert s["num_host_cached_tokens"] == 16 and type(s["num_host_cached_tokens"]) is int
    assert s["host_stored_bytes"] == 3072.0 + 1024.0 == 4096.0
    assert s["host_loaded_bytes"] == 2048.0 and type(s["host_loaded_bytes"]) is float
    assert s["num_cached_tokens"] == 32   # the host-tier hits are among the cached tokens
    # Without the host-tier variables (an old Dataset) every other figure is the same.
    data = arrays()
    for name in HOST_VARS:
        del data[name]
    old = summarize(make(data))
    assert (old["num_host_cached_tokens"], old["host_stored_bytes"],
            old["host_loaded_bytes"]) == (0, 0.0, 0.0)
    new_keys = {"num_host_cached_tokens", "host_stored_bytes", "host_loaded_bytes"}
    for key in set(s) - new_keys:
        assert s[key] == old[key] or (math.isnan(s[key]) and math.isnan(old[key])), key


def test_the_existing_figures_are_unchanged(make):
    s = summarize(make(arrays()))
    assert s["num_requests"] == 3 and s["num_iterations"] == 4
    assert s["prompt_throughput"] == 40 / 4.0 and s["generation_throughput"] == 7 / 4.0
    assert s["ttft_mean"] == 1.75 / 3 and s["ttft_p50"] == 0.5
    assert s["tpot_mean"] == 0.75 and s["tpot_p50"] == 0.75      # request 1 has no TPOT
    assert s["e2e_mean"] == 5.75 / 3 and s["e2e_p50"] == 2.5
    assert s["kv_usage_peak"] == 0.75 and s["num_evictions"] == 0


def test_goodput_counts_requests_meeting_both_slos(make):
    # Request 0 (TTFT 0.5, TPOT 0.5) meets both; request 1 (TTFT 0.25) has one output
    # token, no TPOT: it meets slo_tpot trivially; request 2's TPOT 1.0 > 0.5 fails it.
    s = summarize(make(arrays()), slo_ttft=1.0, slo_tpot=0.5)
    assert s["goodput_fraction"] == 2 / 3
    assert s["goodput"] == 2 / 4.0
    # An SLO equal to the value is met (<=); one SLO alone checks only that one.
    assert summarize(make(arrays()), slo_ttft=0.5)["goodput_fraction"] == 2 / 3
    assert summarize(make(arrays()), slo_ttft=0.25)["goodput_fraction"] == 1 / 3
    assert summarize(make(arrays()), slo_tpot=1.0)["goodput"] == 3 / 4.0
    # The goodput figures never change the others.
    plain, slo = summarize(make(arrays())), summarize(make(arrays()), slo_ttft=1.0)
    assert {k: v for k, v in plain.items() if not k.startswith("goodput")} == \
        {k: v for k, v in slo.items() if not k.startswith("goodput")}


def test_unfinished_and_outputless_requests_in_goodput(make):
    # A 4th request that has its first token but no finish, and a 5th that finished
    # with no output token (no TTFT): neither counts as good under a TTFT SLO; the
    # unfinished one counts in no rate.
    data = arrays(arrival=ARRIVAL + [1.0, 2.0], first=FIRST + [1.5, NAN],
                  finished=FINISHED + [NAN, 2.5], outputs=OUTPUTS + [9, 0])
    s = summarize(make(data), slo_ttft=1.0)
    assert s["num_finished"] == 4
    assert s["goodput_fraction"] == 3 / 4 and s["goodput"] == 3 / 4.0
    assert s["request_throughput"] == 4 / 4.0
    assert s["output_throughput"] == 9 / 4.0


@pytest.mark.parametrize("name", ["slo_ttft", "slo_tpot"])
@pytest.mark.parametrize("value", [0, -1.0, math.nan, math.inf, "1", True])
def test_bad_slos_are_refused_by_name(name, value):
    with pytest.raises(ValueError, match=rf"^{name} must be a finite number of seconds > 0 "
                                         rf"or None, got "):
        summarize(as_array_results(arrays()), **{name: value})


def test_an_old_dataset_gives_nan_and_zero():
    data = arrays(gaps=False)
    for name in ("num_prefix_query_tokens", "num_prefix_cached_tokens", "num_preempted",
                 *HOST_VARS):
        del data[name]
    for results in (as_array_results(data), as_dataset(data)):
        s = summarize(results, slo_tpot=0.5)
        assert all(math.isnan(s[k]) for k in ("itl_mean", "itl_p50", "itl_p99",
                                                "prefix_hit_rate"))
        assert s["num_cached_tokens"] == 0 and s["num_preemptions"] == 0
        assert s["num_host_cached_tokens"] == 0 and s["host_stored_bytes"] == 0.0
        assert s["host_loaded_bytes"] == 0.0
        assert s["goodput_fraction"] == 2 / 3 and s["request_throughput"] == 0.75


def test_no_lookups_is_a_nan_hit_rate():
    data = arrays()
    data["num_prefix_query_tokens"] = data["num_prefix_cached_tokens"] = np.zeros(4, int)
    s = summarize(as_array_results(data))
    assert math.isnan(s["prefix_hit_rate"]) and s["num_cached_tokens"] == 0


def test_every_key_is_defined_with_units_and_benchmark_names():
    s = summarize(as_array_results(arrays()), slo_ttft=1.0)
    definitions = metric_definitions()
    assert list(definitions) == list(s) == list(METRIC_UNITS)
    for key, text in definitions.items():
        assert f"[{METRIC_UNITS[key][0]}]" in text, key
    for key, vllm in [("ttft_mean", "mean_ttft_ms"), ("tpot_p50", "median_tpot_ms"),
                      ("itl_p99", "p99_itl_ms"), ("e2e_mean", "mean_e2el_ms"),
                      ("request_throughput", "request_throughput"),
                      ("output_throughput", "output_throughput"),
                      ("goodput", "request_goodput")]:
        assert f"benchmark_serving {vllm}" in definitions[key], key
    assert "trivially" in definitions["goodput_fraction"]
    assert METRIC_UNITS["num_host_cached_tokens"][0] == "token"
    assert METRIC_UNITS["host_stored_bytes"][0] == METRIC_UNITS["host_loaded_bytes"][0] == "B"
    assert "evicted_bytes" in definitions["host_stored_bytes"]
    assert "reloaded_bytes" in definitions["host_loaded_bytes"]


def test_summarize_is_importable_from_where_it_was():
    from llmsim_nb import summarize as top

    assert dataset_module.summarize is summarize is top


# ------------------------------------------------------------- recorded variables
def plan(**kw):
    batch = BatchShape.from_lists([8, 1, 1], [0, 20, 30], request_ids=[4, 1, 2])
    return IterationPlan(iteration=0, scheduled_at=0.0, batch=batch,
                         num_prompt_tokens=np.array([8, 0, 0]), evicted_request_ids=(),
                         reloaded_request_ids=(), evicted_bytes=0.0, reloaded_bytes=0.0,
                         num_used_blocks=3, num_blocks=8, **kw)


def record(p):
    return IterationRecord(plan=p, t_start=1.0, t_end=1.5, compute_latency=0.5,
                           host_transfer_latency=0.0, op_latency=np.zeros(1), finished=())


def test_the_plan_s_prefix_and_preemption_fields_are_recorded():
    r = record(plan(num_prefix_query_tokens=24, num_cached_tokens=16,
                    preempted_request_ids=(3, 7), num_host_cached_tokens=8))
    v = r.values()
    assert len(r.row()) == len(ITERATION_VARS)
    assert (v["num_prefix_query_tokens"], v["num_prefix_cached_tokens"], v["prefix_hit_rate"],
            v["num_preempted"], v["num_prefill_tokens"]) == (24, 16, 16 / 24, 2, 8)
    assert v["num_host_cached_tokens"] == 8
    assert list(ITERATION_VARS).index("num_host_cached_tokens") == \
        list(ITERATION_VARS).index("num_prefix_cached_tokens") + 1
    assert math.isnan(record(plan()).values()["prefix_hit_rate"])  # no lookup
    rec = Recorder(("op",), capacity=1)
    rec.append(r)
    rec.append(record(plan()))  # grows the buffer
    a = rec.iteration_arrays()
    assert a["num_prefix_query_tokens"].tolist() == [24, 0]
    assert a["num_prefix_cached_tokens"].tolist() == [16, 0]
    assert a["num_preempted"].tolist() == [2, 0]
    assert a["num_host_cached_tokens"].tolist() == [8, 0]
    for name in ("num_prefix_query_tokens", "num_prefix_cached_tokens", "num_preempted",
                 "num_host_cached_tokens"):
        assert a[name].dtype == np.int64, name
    assert a["prefix_hit_rate"][0] == 16 / 24 and math.isnan(a["prefix_hit_rate"][1])
    step = iteration_dataset(r, ("op",), {})
    assert step["num_prefix_cached_tokens"].attrs["units"] == "token"
    assert int(step["num_preempted"][0]) == 2
    assert int(step["num_host_cached_tokens"][0]) == 8
    assert step["num_host_cached_tokens"].attrs["units"] == "token"


def test_the_table_s_columns_are_request_variables():
    table = RequestTable(capacity=1)
    for _ in range(2):
        table.add(0.0, 10, 4)
    table.num_cached_tokens[:2] = [8, 0]
    table.num_preemptions[:2] = [0, 3]
    table.num_recomputed_tokens[:2] = [0, 12]
    table.priority[:2] = [2, -1]
    a = request_arrays(table)
    assert a["num_cached_tokens"].tolist() == [8, 0]
    assert a["num_preemptions"].tolist() == [0, 3]
    assert a["num_recomputed_tokens"].tolist() == [0, 12]
    assert a["priority"].tolist() == [2, -1]


def test_a_run_records_them_all_with_units():
    trace = Trace(arrival_at=np.arange(6) * 0.004, num_prompt_tokens=np.full(6, 32),
                  num_output_tokens=np.full(6, 4), source="test")
    sim = Simulator(SimConfig.from_flags(model_name="gpt2"), trace)
    ds = sim.run()
    for name in ("num_prefix_query_tokens", "num_prefix_cached_tokens", "prefix_hit_rate",
                 "num_preempted", "num_host_cached_tokens"):
        assert ds[name].dims == ("iteration",)
        assert ds[name].attrs["units"] == VARIABLES[name][0]
    for name in ("num_cached_tokens", "num_preemptions", "num_recomputed_tokens", "priority"):
        assert ds[name].dims == ("request",) and ds[name].attrs["long_name"]
    assert VARIABLES["inter_token_latency"][0] == "s"
    a, b = summarize(sim.result_arrays()), summarize(ds)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == b[key] or (math.isnan(a[key]) and math.isnan(b[key])), key
    assert a["request_throughput"] == 6 / a["simulated_time"]
    assert a["output_throughput"] == 24 / a["simulated_time"]


def test_a_vllm_v1_run_with_a_host_tier_sums_its_copies():
    from llmsim_nb.workload.shared_prefix import shared_prefix_trace

    # 4 groups of 6 prompts sharing a 256-token system prompt, on 64 device blocks:
    # cached blocks the device evicts go to the 1 GiB host tier and are hit there.
    trace = shared_prefix_trace(4, 6, 256, 32, 4, rate=200.0, rng=np.random.default_rng(0))
    config = SimConfig.from_flags(model_name="gpt2", scheduling="vllm-v1", num_kv_blocks=64,
                                  block_size=16, kv_offload_gib=1.0)
    sim = Simulator(config, trace)
    ds = sim.run()
    s = summarize(ds)
    per_token = sim.scheduler.kv_bytes_per_token
    assert s["num_host_cached_tokens"] == int(ds["num_host_cached_tokens"].sum()) > 0
    assert s["num_host_cached_tokens"] < s["num_cached_tokens"]
    assert s["host_loaded_bytes"] == s["num_host_cached_tokens"] * per_token
    assert s["host_stored_bytes"] == float(ds["evicted_bytes"].sum()) > 0
    assert s["host_stored_bytes"] % (16 * per_token) == 0      # whole blocks
    assert s["num_evictions"] == 0                              # no request is swapped
    assert ds["num_host_cached_tokens"].dtype == np.int64


def test_summary_carries_the_definitions_and_slos_in_attrs():
    from llmsim_nb import SimConfig, Simulator
    from llmsim_nb.results.metrics import metric_definitions, summarize

    ds = Simulator(SimConfig.from_flags(model_name="gpt2")).run()
    summary = summarize(ds, slo_ttft=0.5)
    assert isinstance(summary, dict) and set(summary) == set(metric_definitions())
    assert summary.attrs["definitions"] == metric_definitions()
    assert summary.attrs["slo_ttft"] == 0.5 and summary.attrs["slo_tpot"] is None
    assert "benchmark_serving mean_ttft_ms" in summary.attrs["definitions"]["ttft_mean"]
