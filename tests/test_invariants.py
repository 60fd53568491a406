"""Invariants under random load (hypothesis): traces, memory, policies and devices.

Each example steps a simulation iteration by iteration and checks, after every
step and at the end: every request finishes exactly once and generates exactly
the tokens it asked for; KV blocks in use never exceed the capacity and are all
free at the end; admission is first-come first-served, so no request is
overtaken forever (no starvation); clocks and iteration times are monotone and
positive; the same config and trace give an identical Dataset.
"""

import dataclasses

import numpy as np
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmsim_nb import SimConfig, SimulationFinished, Simulator
from llmsim_nb.scheduler.request_state import RequestStatus
from llmsim_nb.workload import Trace

from .test_simulator import check_invariants

# gpt2 weights take ~0.23 GiB: 0.26 GiB leaves a handful of KV blocks (constant
# eviction), 4 GiB leaves thousands.
TINY_MEM, ROOMY_MEM = 0.26, 4.0
# Requests stay under 160 tokens so that one always fits the tiny cache.
MAX_PROMPT, MAX_OUTPUT = 100, 60
# (npu_num, npu_group, parallel, attention_placement) on gpt2 (12 layers, 12 heads).
LAYOUTS = [(1, 1, "hybrid", "auto"), (2, 1, "tensor", "heads"), (2, 2, "pipeline", "auto"),
           (4, 2, "hybrid", "auto"), (5, 1, "tensor", "requests"), (3, 3, "hybrid", "auto")]

SETTINGS = settings(max_examples=20, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def traces(draw, max_requests=40, overload=False):
    n = draw(st.integers(1, max_requests))
    # Overload: everything arrives within a millisecond, far faster than service.
    top = 1e-3 if overload else 0.05
    gaps = draw(st.lists(st.floats(0, top), min_size=n, max_size=n))
    prompts = draw(st.lists(st.integers(1, MAX_PROMPT), min_size=n, max_size=n))
    outputs = draw(st.lists(st.one_of(st.just(0), st.integers(0, MAX_OUTPUT)),
                            min_size=n, max_size=n))
    arrivals = np.cumsum(gaps) - gaps[0]
    return Trace(arrival_at=arrivals, num_prompt_tokens=np.array(prompts, dtype=np.int64),
                 num_output_tokens=np.array(outputs, dtype=np.int64), source="hypothesis")


def configs(layouts=LAYOUTS, mems=(TINY_MEM, 0.3, ROOMY_MEM)):
    return st.builds(
        lambda layout, mem, policy, block, batch, kv, gen, micro: SimConfig.from_flags(
            model_name="gpt2", npu_num=layout[0], npu_group=layout[1], parallel=layout[2],
            attention_placement=layout[3], npu_mem=mem, scheduling=policy, block_size=block,
            max_batch=batch, kv_manage=kv, gen=gen, micro_batches=micro,
            # a token budget only where the policy has one (elsewhere it warns: no effect)
            **({"max_num_batched_tokens": 64} if policy == "chunked" else {})),
        st.sampled_from(layouts), st.sampled_from(mems),
        st.sampled_from(["orca", "vllm", "chunked"]), st.sampled_from([1, 16, 64]),
        st.sampled_from([0, 1, 4]), st.sampled_from(["vllm", "max"]), st.booleans(),
        st.sampled_from([0, 1, 3]))


def check_gen_invariants(ds: xr.Dataset, trace: Trace) -> None:
    """check_invariants for ``gen`` runs: prompts start in the cache, so there is no
    prefill, every output token comes from a decode step, and a request with no
    output finishes on arrival without an iteration."""
    outputs = trace.num_output_tokens
    assert np.isfinite(ds.finished_at).all()
    assert (ds.finished_at >= ds.arrival_at).all() and (ds.admitted_at >= ds.arrival_at).all()
    no_work = outputs == 0
    # ...at the scheduler's first look after it arrives: the end of the iteration
    # running then, if any.
    ends = np.concatenate([[0.0], ds.t_end.values])
    for i in np.flatnonzero(no_work):
        later = ends[ends >= ds.arrival_at.values[i]]
        bound = later[0] if len(later) else ds.arrival_at.values[i]
        assert ds.finished_at.values[i] <= max(bound, ds.arrival_at.values[i])
    assert int(ds.num_finished.sum()) == int((~no_work).sum())
    assert int(ds.num_prefill_tokens.sum()) == 0
    assert int(ds.num_decode_tokens.sum()) == int(outputs.sum())
    assert int(ds.num_generated_tokens.sum()) == int(outputs.sum())
    t_start, t_end = ds.t_start.values, ds.t_end.values
    assert (t_end > t_start).all() and (t_start[1:] >= t_end[:-1]).all()
    assert (ds.num_used_blocks <= ds.attrs["num_kv_blocks"]).all()
    np.testing.assert_allclose(ds.op_latency.sum("op"), ds.compute_latency, rtol=1e-9)


def simulate_checked(config: SimConfig, trace: Trace) -> xr.Dataset:
    """Step to the end, checking the per-step invariants; return the run's Dataset."""
    sim = Simulator(config, trace)
    capacity = sim.kv_cache.num_blocks
    finished_once: set[int] = set()
    last_now = 0.0
    while True:
        try:
            step = sim.step()
        except SimulationFinished:
            break
        t0, t1 = float(step.t_start[0]), float(step.t_end[0])
        assert last_now <= t0 < t1, "clock went back or an iteration took no time"
        last_now = t1
        assert 0 <= sim.kv_cache.num_used_blocks <= capacity
        assert int(step.num_used_blocks[0]) <= capacity
        done = {s.request_id for s in sim.scheduler.requests
                if s.status is RequestStatus.FINISHED}
        assert finished_once <= done, "a finished request came back"
        finished_once = done
        for s in sim.scheduler.requests:
            assert s.num_generated_tokens <= s.num_output_tokens
    assert sim.is_finished
    # Requests with no work at all (gen with no output) finish on arrival, outside
    # any iteration, possibly during the final step() call.
    finished_once = {s.request_id for s in sim.scheduler.requests
                     if s.status is RequestStatus.FINISHED}
    # Every request finished, with exactly the tokens it asked for.
    for s in sim.scheduler.requests:
        assert s.status is RequestStatus.FINISHED
        assert s.num_generated_tokens == s.num_output_tokens
    assert len(finished_once) == len(trace)
    # All KV blocks are returned.
    assert sim.kv_cache.num_used_blocks == 0
    ds = sim.results()
    if config.scheduler.gen:
        check_gen_invariants(ds, trace)
    else:
        check_invariants(ds, trace)
    # First come, first served: admission follows arrival order, so a request is
    # never overtaken by a later one and cannot wait forever.
    # (A request with no work at all, gen with no output, needs no batch slot.)
    works = ~(config.scheduler.gen & (trace.num_output_tokens == 0))
    assert (np.diff(ds.admitted_at.values[works]) >= 0).all()
    assert (ds.latency > 0).all()
    return ds


def deterministic(config: SimConfig, trace: Trace, ds: xr.Dataset) -> None:
    again = Simulator(dataclasses.replace(config), trace).run()
    xr.testing.assert_identical(ds.drop_vars("wall_time"), again.drop_vars("wall_time"))


@SETTINGS
@given(trace=traces(), config=configs())
def test_random_traces_and_configs(trace, config):
    ds = simulate_checked(config, trace)
    deterministic(config, trace, ds)


@SETTINGS
@given(trace=traces(max_requests=60, overload=True),
       config=configs(layouts=LAYOUTS[:2] + LAYOUTS[3:4], mems=(TINY_MEM,)))
def test_heavy_overload_on_tiny_memory(trace, config):
    ds = simulate_checked(config, trace)
    # The cache is full most of the time: it is never over capacity, and every
    # evicted request is reloaded exactly once per eviction.
    assert int(ds.num_reloaded.sum()) == int(ds.num_evicted.sum())
    assert int(ds.num_evictions.sum()) == int(ds.num_evicted.sum())


@settings(max_examples=10, deadline=None, derandomize=True)
@given(n=st.integers(1, 30), config=configs())
def test_zero_length_outputs(n, config):
    rng = np.random.default_rng(n)
    trace = Trace(arrival_at=np.sort(rng.uniform(0, 0.01, n)),
                  num_prompt_tokens=rng.integers(1, MAX_PROMPT, n),
                  num_output_tokens=np.zeros(n, dtype=np.int64), source="zero outputs")
    ds = simulate_checked(config, trace)
    assert int(ds.num_generated_tokens.sum()) == 0
    assert np.isnan(ds.first_token_at).all() and np.isnan(ds.tpot).all()


def test_constant_eviction_is_really_exercised():
    """The tiny-memory setting does evict (so the properties above test eviction)."""
    rng = np.random.default_rng(7)
    n = 40
    trace = Trace(arrival_at=np.zeros(n), num_prompt_tokens=rng.integers(50, MAX_PROMPT, n),
                  num_output_tokens=rng.integers(30, MAX_OUTPUT, n), source="burst")
    config = SimConfig.from_flags(model_name="gpt2", npu_mem=TINY_MEM)
    ds = simulate_checked(config, trace)
    assert int(ds.num_evicted.sum()) > 10
    assert float(ds.kv_usage.max()) > 0.8
