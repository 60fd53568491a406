"""Timelines as Chrome / Perfetto trace-event JSON: exact times, tracks, files, refusals."""

from __future__ import annotations

import gzip
import json
import math
import os
from collections import defaultdict
from itertools import pairwise

import numpy as np
import pytest
import xarray as xr

from llmsim_nb import SimConfig, Simulator
from llmsim_nb.results import to_trace_events, write_trace_events
from llmsim_nb.workload import Trace

US = 1e6


def _trace(n: int = 6, prompt: int = 48, output: int = 3, gap: float = 0.004) -> Trace:
    return Trace(arrival_at=np.arange(n) * gap,
                 num_prompt_tokens=np.full(n, prompt, dtype=np.int64) + np.arange(n),
                 num_output_tokens=np.full(n, output, dtype=np.int64) + np.arange(n) % 3,
                 source="test")


@pytest.fixture(scope="module")
def sim_step_run():
    sim = Simulator(SimConfig.from_flags(model_name="gpt2", npu_num=2), _trace())
    step = sim.step()
    return step, sim.run()


@pytest.fixture(scope="module")
def pim_step_run():
    config = SimConfig.from_flags(model_name="gpt2", npu_num=4, npu_mem=4, gen=True,
                                  pim_channels=4, pim_type="local", sub_batch=True)
    trace = Trace(arrival_at=np.zeros(16), num_prompt_tokens=np.full(16, 300),
                  num_output_tokens=np.full(16, 3), source="test")
    sim = Simulator(config, trace)
    sim.step()
    step = sim.step()  # a decode iteration: attention on the PIM units
    return step, sim.run()


def _names(trace: dict) -> tuple[dict, dict]:
    """``{pid: process name}`` and ``{(pid, tid): thread name}``."""
    procs, threads = {}, {}
    for e in trace["traceEvents"]:
        if e["ph"] == "M" and e["name"] == "process_name":
            procs[e["pid"]] = e["args"]["name"]
        elif e["ph"] == "M" and e["name"] == "thread_name":
            threads[(e["pid"], e["tid"])] = e["args"]["name"]
    return procs, threads


def _by_track(events) -> dict:
    tracks = defaultdict(list)
    for e in events:
        tracks[(e["pid"], e["tid"])].append(e)
    return tracks


def _assert_no_overlap(events) -> None:
    for track, evs in _by_track(events).items():
        evs = sorted(evs, key=lambda e: (e["ts"], e["dur"]))
        for a, b in pairwise(evs):
            assert b["ts"] >= a["ts"] + a["dur"] - 1e-6, (track, a["name"], b["name"])


def _json(trace: dict) -> dict:
    return json.loads(json.dumps(trace, allow_nan=False))


# ------------------------------------------------------------------ step
def test_every_step_node_is_one_complete_event_at_its_exact_time(sim_step_run):
    step, _ = sim_step_run
    trace = to_trace_events(step)
    nodes = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["cat"] != "iteration"]
    assert len(nodes) == step.sizes["node"]
    by_id = {e["args"]["node"]: e for e in nodes}
    assert sorted(by_id) == step["node"].values.tolist()
    start, end = step.node_start_at.values, step.node_end_at.values
    procs, threads = _names(trace)
    for i, node in enumerate(step["node"].values.tolist()):
        e = by_id[node]
        assert e["ts"] == start[i] * 1e6
        assert e["dur"] == (end[i] - start[i]) * 1e6
        assert e["name"] == str(step.node_name.values[i])
        assert e["cat"] == e["args"]["type"] == str(step.node_type.values[i])
        assert e["args"]["size_bytes"] == float(step.node_size.values[i])
        assert e["args"]["device"] == int(step.node_device.values[i])
        assert e["pid"] == int(step.node_device.values[i]) + 2
        assert procs[e["pid"]] == f"NPU {e['args']['device']}"
    kinds = {threads[(e["pid"], e["tid"])] for e in nodes}
    assert "compute" in kinds and "collectives" in kinds
    (iteration,) = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["cat"] == "iteration"]
    assert iteration["ts"] == 0 and iteration["dur"] == float(step.latency.values[0]) * US
    assert iteration["args"]["batch_size"] == int(step.batch_size.values[0])
    other = trace["otherData"]
    assert other["dataset_kind"] == "step"
    for key in ("model", "hardware", "engine", "tensor_parallel", "pipeline_parallel",
                "attention_placement", "network", "config"):
        assert other[key] == step.attrs[key]
    assert _json(trace) == trace  # JSON-safe as it stands


def test_no_track_holds_overlapping_events_and_compute_needs_one_track():
    # Two groups of two devices: collectives of both groups run at once, so the
    # representative's collectives need a second thread; compute never does.
    sim = Simulator(SimConfig.from_flags(model_name="gpt2", npu_num=4, npu_group=2), _trace())
    step = sim.step()
    trace = to_trace_events(step)
    _, threads = _names(trace)
    xs = [e for e in trace["traceEvents"] if e["ph"] == "X"]
    _assert_no_overlap(xs)
    compute = defaultdict(set)
    for e in xs:
        if e["cat"] == "COMP_NODE":
            compute[(e["pid"], e["args"]["unit"])].add(e["tid"])
    assert compute and all(len(tids) == 1 for tids in compute.values())
    assert all(threads[(pid, next(iter(tids)))] == "compute" for (pid, _), tids in compute.items())
    assert len(xs) == step.sizes["node"] + 1


def test_pim_step_has_pim_unit_tracks_and_the_pim_run_file_is_valid(pim_step_run, tmp_path):
    step, run = pim_step_run
    trace = to_trace_events(step)
    _, threads = _names(trace)
    pim = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["cat"] == "COMP_NODE"
           and e["args"]["unit"] == 1]
    assert len(pim) == int(((step.node_unit.values == 1)
                            & (step.node_type.values == "COMP_NODE")).sum()) > 0
    assert {threads[(e["pid"], e["tid"])] for e in pim} == {"PIM unit 1"}
    _assert_no_overlap([e for e in trace["traceEvents"] if e["ph"] == "X"])
    for ds, name in ((step, "step.json"), (run, "run.json")):
        path = write_trace_events(ds, tmp_path / name)
        loaded = json.loads(path.read_text())
        assert loaded == _json(to_trace_events(ds))
        assert loaded["displayTimeUnit"] == "ms" and loaded["traceEvents"]


# ------------------------------------------------------------------ run
def test_every_iteration_is_one_event_and_counters_follow_the_batch(sim_step_run):
    _, run = sim_step_run
    trace = to_trace_events(run)
    its = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["cat"] == "iteration"]
    assert len(its) == run.sizes["iteration"] > 1
    t0, t1 = run.t_start.values, run.t_end.values
    for i, e in enumerate(sorted(its, key=lambda e: e["ts"])):
        assert e["name"] == f"iteration {i}"
        assert e["ts"] == t0[i] * US and e["dur"] == (t1[i] - t0[i]) * US
        assert e["args"]["batch_size"] == int(run.batch_size.values[i])
        assert e["args"]["num_prefill_tokens"] == int(run.num_prefill_tokens.values[i])
        assert e["args"]["kv_usage"] == float(run.kv_usage.values[i])
    _assert_no_overlap(its)
    counters = defaultdict(dict)
    for e in trace["traceEvents"]:
        if e["ph"] == "C":
            counters[e["name"]][e["ts"]] = e["args"]
    assert {"batch", "KV", "tokens in flight", "requests"} <= set(counters)
    for i in range(run.sizes["iteration"]):
        assert counters["batch"][t0[i] * US] == {"size": int(run.batch_size.values[i])}
        assert counters["KV"][t0[i] * US] == {"usage": float(run.kv_usage.values[i])}
        assert counters["tokens in flight"][t0[i] * US] == {
            "prefill": int(run.num_prefill_tokens.values[i]),
            "decode": int(run.num_decode_tokens.values[i])}
    assert counters["batch"][t1[-1] * US] == {"size": 0}
    last = counters["requests"][max(counters["requests"])]
    assert last == {"queued": 0, "admitted": 0}  # everyone finished
    assert trace["otherData"]["num_iterations"] == run.sizes["iteration"]


def test_request_phases_are_contiguous_and_end_at_finished_at(sim_step_run):
    _, run = sim_step_run
    trace = to_trace_events(run)
    procs, threads = _names(trace)
    assert procs[2] == "Requests"
    tracks = _by_track(e for e in trace["traceEvents"] if e["ph"] == "X" and e["cat"] == "request")
    assert len(tracks) == run.sizes["request"]
    for r, rid in enumerate(run.request.values.tolist()):
        evs = tracks[(2, r + 1)]
        assert threads[(2, r + 1)] == f"request {rid}"
        assert [e["name"] for e in evs] == ["queued", "prefill", "decode"]
        points = [float(run[n].values[r]) for n in
                  ("arrival_at", "admitted_at", "first_token_at", "finished_at")]
        for e, a, b in zip(evs, points, points[1:]):
            assert e["ts"] == a * US and e["dur"] == (b - a) * US
            assert "complete" not in e["args"] and e["args"]["request"] == rid
        for a, b in pairwise(evs):
            assert b["ts"] == pytest.approx(a["ts"] + a["dur"], abs=1e-6)
        assert evs[-1]["ts"] + evs[-1]["dur"] == pytest.approx(points[-1] * US, abs=1e-6)
    assert trace["otherData"]["requests_capped"] is False


def test_request_tracks_are_capped_and_the_metadata_says_so(sim_step_run):
    _, run = sim_step_run
    trace = to_trace_events(run, max_requests=2)
    procs, threads = _names(trace)
    assert sorted(tid for pid, tid in threads if pid == 2) == [1, 2]
    total = run.sizes["request"]
    assert procs[2] == f"Requests (first 2 of {total})"
    other = trace["otherData"]
    assert other["requests_capped"] is True and other["requests_shown"] == 2
    assert other["num_requests"] == total
    labels = [e for e in trace["traceEvents"] if e["ph"] == "M" and e["name"] == "process_labels"]
    assert labels and "2 of" in labels[0]["args"]["labels"]
    assert not _names(to_trace_events(run, max_requests=0))[1].get((2, 1))
    with pytest.raises(ValueError, match="max_requests"):
        to_trace_events(run, max_requests=-1)


def test_a_run_stopped_early_ends_open_phases_at_its_end():
    sim = Simulator(SimConfig.from_flags(model_name="gpt2"), _trace(n=6, output=40, gap=0.0))
    run = sim.run(until=0.005)
    trace = to_trace_events(run)
    end = float(run.t_end.values.max()) * US
    reqs = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["cat"] == "request"]
    open_ = [e for e in reqs if e["args"].get("complete") is False]
    assert open_ and all(e["ts"] + e["dur"] == pytest.approx(end, abs=1e-6) for e in open_)
    assert len(open_) == int(np.isnan(run.finished_at.values).sum())
    assert all(math.isfinite(e["ts"]) and e["dur"] >= 0 for e in reqs)
    _json(trace)


# ------------------------------------------------------------------ files and refusals
def test_written_files_round_trip_and_gzip(sim_step_run, tmp_path):
    step, run = sim_step_run
    path = write_trace_events(run, tmp_path / "new" / "run.json")
    assert json.loads(path.read_text()) == _json(to_trace_events(run))
    gz = write_trace_events(step, tmp_path / "step.json.gz")
    assert json.loads(gzip.decompress(gz.read_bytes())) == _json(to_trace_events(step))
    assert sorted(os.listdir(tmp_path)) == ["new", "step.json.gz"]  # no temporary file


def test_a_bad_dataset_or_path_is_refused_in_one_line(sim_step_run, tmp_path):
    step, run = sim_step_run
    cases = [(xr.Dataset({"x": ("t", np.arange(3))}), "Simulator.step"),
             (step.drop_vars("node_end_at"), "node_end_at"),
             (run.drop_vars(["kv_usage", "finished_at"]), "kv_usage, finished_at")]
    for ds, message in cases:
        for call, args in ((to_trace_events, (ds,)),
                           (write_trace_events, (ds, tmp_path / "bad.json"))):
            with pytest.raises(ValueError, match=message) as info:
                call(*args)
            assert "\n" not in str(info.value)
    hours = run.assign_attrs(time_units="h")
    with pytest.raises(ValueError, match="seconds"):
        to_trace_events(hours)
    with pytest.raises(TypeError, match="xarray Dataset"):
        to_trace_events({"t_start": []})
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(ValueError, match="folder") as info:
        write_trace_events(run, tmp_path / "folder.json")
    assert "\n" not in str(info.value)
    assert sorted(os.listdir(tmp_path)) == ["folder.json"]  # nothing written
