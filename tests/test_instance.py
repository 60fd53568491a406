"""The system builder and the instance interface a cluster drives."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from llmsim_nb import SimConfig, SimulationFinished, Simulator
from llmsim_nb.instance import Instance
from llmsim_nb.system import InstanceParts, build_instance
from llmsim_nb.workload import Request, Trace

from .test_simulator import check_invariants, gpt2, small_trace


def _requests(trace: Trace) -> list[Request]:
    return [Request(i, float(trace.arrival_at[i]), int(trace.num_prompt_tokens[i]),
                    int(trace.num_output_tokens[i])) for i in range(len(trace))]


def _without_effort(ds: xr.Dataset) -> xr.Dataset:
    out = ds.drop_vars("wall_time")
    out.attrs = {k: v for k, v in ds.attrs.items() if k != "trace_source"}
    return out


def test_build_instance_assembles_inspectable_parts_without_simulating():
    parts = build_instance(SimConfig.from_flags(model_name="gpt2", npu_num=4, npu_group=2))
    assert isinstance(parts, InstanceParts)
    assert (parts.layout.tp, parts.layout.pp) == (2, 2)
    assert parts.num_devices == parts.topology.num_devices == 4
    assert parts.kv_cache.num_used_blocks == 0 and parts.kv_cache.num_blocks > 0
    assert len(parts.scheduler.table) == 0
    assert parts.memory.memory_bytes == parts.hardware.memory_bytes
    # Fresh mutable state each call: two instances never share a KV cache.
    again = build_instance(parts.config)
    assert again.kv_cache is not parts.kv_cache and again.scheduler is not parts.scheduler


def test_build_instance_reports_the_first_impossible_part():
    with pytest.raises(ValueError, match="does not fit"):
        build_instance(SimConfig.from_flags(model_name="gpt3-175b"))
    with pytest.raises(ValueError, match="has 8 devices but npu_num=4"):
        build_instance(SimConfig.from_flags(model_name="gpt2", npu_num=4,
                                            network="fully_connected_1d_8"))


def test_submitted_requests_give_the_simulators_dataset():
    """An instance fed one request at a time equals the Simulator with the trace."""
    trace = small_trace(25)
    config = gpt2(scheduling="chunked", max_num_batched_tokens=64)
    expected = Simulator(config, trace).run()
    inst = Instance(build_instance(config))
    for request in _requests(trace):
        assert inst.submit(request) == request.request_id
    got = inst.run()
    xr.testing.assert_identical(_without_effort(expected), _without_effort(got))
    check_invariants(got, trace)


def test_submitting_while_running_matches_submitting_up_front():
    """A cluster delivers each request at its arrival time, between iterations:
    the instance's result is the same as with every request submitted first."""
    trace = small_trace(30, rate=200.0)
    config = gpt2()
    expected = Simulator(config, trace).run()
    inst = Instance(build_instance(config))
    pending = _requests(trace)
    clocks = []
    while pending or not inst.is_finished:
        next_at = inst.next_event_at
        # Deliver every arrival up to the instance's next event, then step it.
        while pending and (next_at is None or pending[0].arrival_at <= next_at):
            inst.submit(pending.pop(0))
            next_at = inst.next_event_at
        if next_at is None:
            continue
        inst.step()
        clocks.append(inst.now)
    assert all(b >= a for a, b in zip(clocks, clocks[1:]))  # the clock never goes back
    xr.testing.assert_identical(_without_effort(expected), _without_effort(inst.results()))


def test_next_event_at_says_when_the_instance_has_work():
    inst = Instance(build_instance(gpt2()))
    assert inst.next_event_at is None and inst.is_finished
    with pytest.raises(SimulationFinished):
        inst.step()
    inst.submit(Request(41, arrival_at=2.0, num_prompt_tokens=10, num_output_tokens=3))
    assert inst.next_event_at == 2.0 and inst.request_ids == [41]
    ds = inst.step()  # idle until the arrival: the clock jumps, then one prefill
    assert float(ds.t_start[0]) == 2.0 and inst.now > 2.0
    assert inst.next_event_at == inst.now  # a running request: work now
    inst.run()
    assert inst.is_finished and inst.next_event_at is None
    ds = inst.results()
    assert int(ds.num_generated_tokens.sum()) == 3 and float(ds.arrival_at[0]) == 2.0


def test_submit_at_a_later_time_and_refusals():
    config = gpt2(batch_delay=0.5)
    inst = Instance(build_instance(config))
    inst.submit(Request(0, arrival_at=1.0, num_prompt_tokens=8, num_output_tokens=2), at=1.25)
    assert inst.next_event_at == 1.75  # reached the instance at 1.25, plus batch_delay
    with pytest.raises(ValueError, match="before the previous request"):
        inst.submit(Request(1, arrival_at=1.0, num_prompt_tokens=8, num_output_tokens=2))
    with pytest.raises(ValueError, match=r"longer than max_model_len=1024 .* request 9 "):
        inst.submit(Request(9, arrival_at=2.0, num_prompt_tokens=1000, num_output_tokens=30))
    with pytest.raises(ValueError, match=r"submit\(at=nan\)"):
        inst.submit(Request(2, arrival_at=2.0, num_prompt_tokens=8, num_output_tokens=2),
                    at=float("nan"))
    assert len(inst.scheduler.table) == 1 and inst.request_ids == [0]  # nothing half-added


def test_run_until_starts_no_iteration_at_or_after_it():
    trace = Trace(arrival_at=np.array([0.0, 5.0]), num_prompt_tokens=np.array([16, 16]),
                  num_output_tokens=np.array([2, 2]), source="two")
    sim = Simulator(gpt2(), trace)
    part = sim.run(until=1.0)
    assert part.sizes["iteration"] == 2 and float(part.t_start.max()) < 1.0
    assert sim.now < 5.0 and sim.next_event_at == 5.0  # idle: the clock did not jump
    whole = sim.run()
    assert whole.sizes["iteration"] == 4 and float(whole.t_start[2]) == 5.0


def test_run_until_inf_is_run_to_the_end():
    trace = small_trace(10)
    a = Simulator(gpt2(), trace).run(until=float("inf"))
    b = Simulator(gpt2(), trace).run()
    xr.testing.assert_identical(_without_effort(a), _without_effort(b))


def test_parts_belong_to_one_instance():
    parts = build_instance(gpt2())
    Instance(parts)
    with pytest.raises(ValueError, match="already belong to an Instance"):
        Instance(parts)


def test_submit_names_the_callers_ids_and_bounds_the_time():
    inst = Instance(build_instance(gpt2()))
    inst.submit(Request(7, arrival_at=2.0, num_prompt_tokens=8, num_output_tokens=2))
    with pytest.raises(ValueError, match=r"request 9 reaches the instance at 1.0 s, before the "
                                         r"previous request \(7, at 2.0 s\)"):
        inst.submit(Request(9, arrival_at=1.0, num_prompt_tokens=8, num_output_tokens=2))
    with pytest.raises(ValueError, match=r"submit\(at=1e\+300\): .* below 1e\+08 s"):
        inst.submit(Request(9, arrival_at=3.0, num_prompt_tokens=8, num_output_tokens=2),
                    at=1e300)


@pytest.mark.parametrize("args, kwargs, kind, pattern", [
    (("gpt2",), {}, TypeError, r"build_instance\(config=...\) must be a SimConfig or None, got "
                               r"str \(for a model by name: SimConfig.from_flags"),
    ((), {"engine": "npu"}, TypeError, r"build_instance\(engine='npu'\): engine must be an "
                                       r"Engine instance"),
    ((), {"pim_mapping": "attention"}, TypeError, r"pim_mapping=...\) must be a callable"),
    ((), {"pim_mapping": lambda op: None}, ValueError, r"but pim_type='none'"),
    ((), {"longest_request": -5}, ValueError, r"longest_request=-5\) must be an integer >= 0"),
    ((), {"longest_request": "x"}, ValueError, r"longest_request='x'\) must be an integer"),
])
def test_build_instance_refuses_arguments_of_the_wrong_kind(args, kwargs, kind, pattern):
    with pytest.raises(kind, match=pattern):
        build_instance(*args, **kwargs)


def test_result_arrays_summarize_as_the_dataset_does():
    """The CLI summarises plain arrays (no Dataset, no xarray): the same figures."""
    import math

    from llmsim_nb.results import summarize
    sim = Simulator(gpt2(), small_trace(20))
    assert sim.advance() == sim.num_iterations > 0
    a, b = summarize(sim.result_arrays()), summarize(sim.results())
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == b[key] or (math.isnan(a[key]) and math.isnan(b[key])), key
