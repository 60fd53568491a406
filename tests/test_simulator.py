"""The simulation loop end to end: invariants, determinism, Dataset schema."""

import dataclasses

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmsim_nb import SimConfig, SimulationFinished, Simulator, summarize
from llmsim_nb.results.dataset import VARIABLES
from llmsim_nb.workload import Trace


def small_trace(n=20, seed=1, max_prompt=64, max_output=24, rate=50.0):
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate, n))
    arrivals -= arrivals[0]
    return Trace(arrival_at=arrivals,
                 num_prompt_tokens=rng.integers(1, max_prompt, n),
                 num_output_tokens=rng.integers(1, max_output, n), source="test")


def gpt2(**flags):
    return SimConfig.from_flags(model_name="gpt2", **flags)


def check_invariants(ds, trace):
    n = len(trace)
    assert ds.sizes["request"] == n
    # Every request finishes exactly once, after it arrived.
    assert np.isfinite(ds.finished_at).all()
    assert int(ds.num_finished.sum()) == n
    assert (ds.finished_at >= ds.arrival_at).all()
    emits = ds.num_output_tokens > 0
    assert (ds.first_token_at.where(emits, drop=True) <= ds.finished_at.where(emits, drop=True)).all()
    assert np.isnan(ds.first_token_at.where(~emits, drop=True)).all()
    assert (ds.admitted_at >= ds.arrival_at).all()
    # Tokens are conserved.
    assert int(ds.num_prefill_tokens.sum()) == int(trace.num_prompt_tokens.sum())
    assert int(ds.num_decode_tokens.sum()) == int(
        np.maximum(trace.num_output_tokens - 1, 0).sum())
    assert int(ds.num_generated_tokens.sum()) == int(trace.num_output_tokens.sum())
    # Clocks never go back; iterations have positive length and do not overlap.
    t_start, t_end = ds.t_start.values, ds.t_end.values
    assert (t_end > t_start).all()
    assert (t_start[1:] >= t_end[:-1]).all()
    # KV blocks never exceed capacity.
    assert (ds.kv_usage <= 1.0).all() and (ds.kv_usage >= 0).all()
    assert (ds.num_used_blocks <= ds.attrs["num_kv_blocks"]).all()
    # Ops sum to compute; on one device the iteration is its compute plus the
    # host transfers that precede it; on many it is at least the compute.
    np.testing.assert_allclose(ds.op_latency.sum("op"), ds.compute_latency, rtol=1e-9)
    if ds.attrs["tensor_parallel"] * ds.attrs["pipeline_parallel"] == 1:
        np.testing.assert_allclose(ds.latency, ds.compute_latency + ds.host_transfer_latency)


def test_default_run_finishes_every_request():
    sim = Simulator()
    ds = sim.run()
    check_invariants(ds, sim.trace)
    assert sim.is_finished
    s = summarize(ds)
    assert s["num_finished"] == 100
    # GPT3-6.7B decode on 936 GB/s: the weights alone take ~14 ms to stream.
    weights = sim.model.weight_bytes()
    assert s["tpot_p50"] > weights / 936e9


def test_step_returns_one_iteration_and_run_continues():
    sim = Simulator(gpt2(), small_trace())
    first = sim.step()
    assert first.sizes["iteration"] == 1
    assert int(first.iteration[0]) == 0
    assert first.num_query_tokens.sum() == first.num_prefill_tokens.sum() + \
        first.num_decode_tokens.sum()
    second = sim.step()
    assert float(second.t_start[0]) >= float(first.t_end[0])
    full = sim.run()
    assert full.sizes["iteration"] == sim.num_iterations
    np.testing.assert_allclose(full.t_end[:2], [float(first.t_end[0]), float(second.t_end[0])])
    with pytest.raises(SimulationFinished):
        sim.step()


def test_run_until_stops_and_resumes_to_the_same_result():
    trace = small_trace()
    whole = Simulator(gpt2(), trace).run()
    sim = Simulator(gpt2(), trace)
    part = sim.run(until=0.05)
    assert part.sizes["iteration"] < whole.sizes["iteration"]
    # Either the last iteration ran up to `until`, or the instance is idle
    # until after it (the clock does not jump past `until` to the next arrival).
    assert float(part.t_end[-1]) >= 0.05 or sim.next_event_at >= 0.05 or sim.is_finished
    assert float(part.t_start.max()) < 0.05
    rest = sim.run()
    xr.testing.assert_identical(rest.drop_vars("wall_time"), whole.drop_vars("wall_time"))


def test_same_config_and_seed_give_identical_dataset():
    a = Simulator(gpt2(), small_trace()).run()
    b = Simulator(gpt2(), small_trace()).run()
    xr.testing.assert_identical(a.drop_vars("wall_time"), b.drop_vars("wall_time"))


def test_iteration_variables_mean_what_they_say():
    """Each recorded column holds its own quantity (the recorder writes rows by position)."""
    sim = Simulator(gpt2(npu_mem=0.27, block_size=16), small_trace(60, max_prompt=300,
                                                                 max_output=80, rate=200.0))
    while not sim.is_finished:
        plan_finished = sim.scheduler.num_finished
        ds = sim.step()
        v = {name: ds[name].values.item() for name in ds.data_vars if ds[name].dims == ("iteration",)}
        q, prompt = ds.num_query_tokens.values, ds.num_prompt_tokens.values
        assert v["batch_size"] == len(ds.request) == len(q)
        assert v["num_prefill_tokens"] == int(prompt.sum())
        assert v["num_decode_tokens"] == int(q.sum() - prompt.sum())
        assert v["latency"] == v["t_end"] - v["t_start"] > 0
        assert v["t_start"] >= 0 and v["compute_latency"] > 0
        assert 0 <= v["host_transfer_latency"] <= v["latency"]
        assert v["num_generated_tokens"] <= len(q)
        assert v["kv_usage"] == v["num_used_blocks"] / ds.attrs["num_kv_blocks"]
        assert v["num_finished"] == sim.scheduler.num_finished - plan_finished
        moved = sim.model.kv_bytes_per_token()
        assert v["evicted_bytes"] % moved == 0 and v["reloaded_bytes"] % moved == 0
        assert (v["num_evicted"] > 0) == (v["evicted_bytes"] > 0)
        assert (v["num_reloaded"] > 0) == (v["reloaded_bytes"] > 0)
        assert v["reuse_hits"] + v["reuse_misses"] > 0
    assert int(sim.results().num_evicted.sum()) > 0  # the eviction columns were exercised


def test_dataset_schema_has_units_and_provenance():
    sim = Simulator(gpt2(), small_trace(5))
    ds = sim.run()
    for name, var in ds.data_vars.items():
        assert var.attrs["units"] and var.attrs["long_name"], name
        assert name in VARIABLES
    for name in ("t_start", "t_end", "latency", "batch_size", "num_prefill_tokens",
                 "num_decode_tokens", "kv_usage", "num_evicted", "arrival_at",
                 "first_token_at", "finished_at", "ttft", "tpot", "e2e_latency",
                 "queueing_delay", "op_latency"):
        assert name in ds
    assert ds.op_latency.dims == ("iteration", "op")
    assert SimConfig.from_json(ds.attrs["config"]) == sim.config
    assert ds.attrs["seed"] == 0 and ds.attrs["llmsim_nb_version"]
    assert "qkv_proj" in ds.op.values and "attn_score" in ds.op.values


def test_netcdf_round_trip_loses_nothing(tmp_path):
    ds = Simulator(gpt2(), small_trace(8)).run()
    ds.to_netcdf(tmp_path / "run.nc")
    back = xr.load_dataset(tmp_path / "run.nc")
    xr.testing.assert_identical(back, ds)


def test_tiny_memory_evicts_and_still_conserves_tokens():
    trace = small_trace(30, max_prompt=200, max_output=200, rate=500.0)
    # gpt2 weights ~0.25 GB; 0.3 GiB leaves a small cache that must spill to host.
    config = gpt2(npu_mem=0.3, block_size=16)
    sim = Simulator(config, trace)
    ds = sim.run()
    check_invariants(ds, trace)
    assert int(ds.num_evicted.sum()) > 0
    assert int(ds.num_reloaded.sum()) == int(ds.num_evicted.sum())
    evicting = ds.num_evicted > 0
    assert (ds.host_transfer_latency.where(evicting, drop=True) > 0).all()
    assert int(ds.num_evictions.sum()) == int(ds.num_evicted.sum())


@pytest.mark.parametrize("policy", ["orca", "vllm", "chunked"])
def test_policies_conserve_tokens(policy):
    trace = small_trace(25, rate=200.0)
    # A token budget only for the policy that has one (the others warn: no effect).
    budget = {"max_num_batched_tokens": 32} if policy == "chunked" else {}
    ds = Simulator(gpt2(scheduling=policy, **budget), trace).run()
    check_invariants(ds, trace)
    if policy == "chunked":
        assert int((ds.num_prefill_tokens + ds.num_decode_tokens).max()) <= 32
    if policy == "vllm":
        assert not ((ds.num_prefill_tokens > 0) & (ds.num_decode_tokens > 0)).any()


def test_max_batch_is_respected():
    ds = Simulator(gpt2(max_batch=3), small_trace(20, rate=1000.0)).run()
    assert int(ds.batch_size.max()) == 3


def test_prefill_costs_more_than_decode_and_longer_context_costs_more():
    trace = Trace(arrival_at=np.zeros(1), num_prompt_tokens=np.array([512]),
                  num_output_tokens=np.array([200]), source="one")
    ds = Simulator(SimConfig(), trace).run()
    assert float(ds.latency[0]) > float(ds.latency[1])
    attn = ds.op_latency.sel(op="attn_score")
    assert float(attn[199]) > float(attn[1])


def test_pim_flags_are_checked_not_ignored():
    with pytest.raises(ValueError, match="pim_num=2 sizes a PIM pool"):
        Simulator(SimConfig.from_flags(pim_type="local", pim_num=2))


def test_model_that_does_not_fit_says_how_much_it_needs():
    with pytest.raises(ValueError, match=r"holds 5[0-9].[0-9]+ GiB of weights"):
        Simulator(SimConfig.from_flags(model_name="gpt3-30b"), small_trace(2))


def test_request_longer_than_the_cache_is_refused_before_running():
    trace = Trace(arrival_at=np.zeros(1), num_prompt_tokens=np.array([100_000]),
                  num_output_tokens=np.array([1]), source="huge")
    with pytest.raises(ValueError, match="could never run"):
        Simulator(gpt2(npu_mem=0.3, max_model_len=200_000), trace)  # beyond gpt2's 1024


traces = st.integers(1, 25).flatmap(lambda n: st.tuples(
    st.lists(st.floats(0, 0.2), min_size=n, max_size=n),
    st.lists(st.integers(1, 300), min_size=n, max_size=n),
    st.lists(st.integers(0, 120), min_size=n, max_size=n)))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=traces, policy=st.sampled_from(["orca", "vllm", "chunked"]),
       npu_mem=st.sampled_from([0.28, 0.35, 2.0]), block_size=st.sampled_from([1, 16, 64]))
def test_invariants_on_random_traces(data, policy, npu_mem, block_size):
    gaps, prompts, outputs = data
    trace = Trace(arrival_at=np.cumsum(gaps) - gaps[0], num_prompt_tokens=np.array(prompts),
                  num_output_tokens=np.array(outputs), source="hypothesis")
    budget = {"max_num_batched_tokens": 128} if policy == "chunked" else {}
    config = gpt2(scheduling=policy, npu_mem=npu_mem, block_size=block_size, **budget)
    ds = Simulator(config, trace).run()
    check_invariants(ds, trace)
    again = Simulator(dataclasses.replace(config), trace).run()
    xr.testing.assert_identical(ds.drop_vars("wall_time"), again.drop_vars("wall_time"))


@pytest.mark.parametrize("flags", [
    dict(), dict(npu_mem=0.3, block_size=16),
    dict(scheduling="chunked", max_num_batched_tokens=48),
    dict(npu_num=4, parallel="tensor"),                                 # TP chain
    dict(npu_num=4, parallel="tensor", npu_mem=0.08, block_size=16),    # TP chain, evictions
    dict(npu_num=2, parallel="tensor", collective="ring"),
    dict(npu_num=4, parallel="tensor", congestion=True),                # not a chain
    dict(pim_type="local", npu_mem=4),                                  # PIM overlaps: not a chain
])
def test_run_fast_path_equals_stepping_through_the_graph(flags):
    """run() adds up chain graphs without building them; step() builds and runs
    every graph: the same numbers, evictions and link bytes included."""
    trace = small_trace(30, max_prompt=200, max_output=200, rate=500.0)
    fast = Simulator(gpt2(**flags), trace).run()
    sim = Simulator(gpt2(**flags), trace)
    while not sim.is_finished:
        sim.step()
    stepped = sim.results()
    xr.testing.assert_identical(fast.drop_vars("wall_time"), stepped.drop_vars("wall_time"))


def test_run_with_micro_batches_on_one_device_counts_every_micro_batch():
    trace = Trace(arrival_at=np.zeros(8), num_prompt_tokens=np.full(8, 32),
                  num_output_tokens=np.full(8, 6), source="8 at once")
    fast = Simulator(gpt2(micro_batches=4), trace).run()
    sim = Simulator(gpt2(micro_batches=4), trace)
    while not sim.is_finished:
        sim.step()
    xr.testing.assert_identical(fast.drop_vars("wall_time"),
                                sim.results().drop_vars("wall_time"))
    one = Simulator(gpt2(), trace).run()
    # Four micro-batches re-read the weights four times: each decode step is slower.
    assert float(fast.latency[-1]) > float(one.latency[-1])
