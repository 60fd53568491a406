"""Bad input found while running, and bad arguments of the Python API.

The doors here are the ones ``tests/test_bad_inputs.py`` cannot reach before
a run: an engine, profiled table or cache that times an operator at NaN, inf,
0 or a negative number of seconds; a scheduler that makes no progress; the
types of the Simulator / Instance arguments; sweep points that fail while
running, sweep axes whose values are the same setting once read, a sweep
started from unguarded top-level script code; and the dashboard, whose
callbacks never let an exception escape. Every message is one line naming the
argument (or the op and the engine), the value and what is allowed.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from llmsim_nb import SimConfig, Simulator, sweep
from llmsim_nb.engines.base import Engine, OpTiming
from llmsim_nb.engines.hardware import get_hardware
from llmsim_nb.engines.npu import NPUEngine
from llmsim_nb.engines.stack import LatencyError
from llmsim_nb.instance import Instance
from llmsim_nb.system import build_instance
from llmsim_nb.sweeps.sweep import SweepWarning
from llmsim_nb.testing import ConformanceError, check_engine
from llmsim_nb.workload import Request, Trace

F = SimConfig.from_flags
SPEC = get_hardware("npu-128x128").spec
GIB = 2 ** 30


def tiny():
    return Trace([0.0, 0.01], [8, 16], [4, 2], source="tiny")


def gpt2(**flags):
    return F(model_name="gpt2", **flags)


class Constant(Engine):
    """A custom engine (the interface of engines/base.py): every op instance
    takes ``seconds``, or ``bad`` for the op named ``op`` (None: every op)."""

    name = "constant"  # not registered: the conformance suite must not see it

    def __init__(self, spec, seconds=1e-6, op=None, bad=None):
        super().__init__(spec)
        self.seconds, self.op, self.bad = seconds, op, bad

    def time_op(self, op):
        value = self.bad if self.bad is not None and self.op in (None, op.name) else self.seconds
        latency = np.full(op.num_instances, float(value))
        zeros = np.zeros(op.num_instances)
        return OpTiming(latency, np.minimum(zeros, latency), np.minimum(zeros, latency))


class Faulty(NPUEngine):
    """The real NPU engine, except that op ``op`` takes ``bad`` seconds."""

    name = "faulty-npu"

    def __init__(self, spec, op, bad):
        super().__init__(spec)
        self.op, self.bad = op, bad

    def time_op(self, op):
        timing = super().time_op(op)
        if op.name != self.op:
            return timing
        latency = np.full_like(timing.latency, self.bad)
        return OpTiming(latency, latency, latency)


# ---------------------------------------------------------------------- latencies
BAD = [(np.nan, r"nan s \(NaN\)"), (np.inf, r"inf s \(infinite\)"),
       (-1e-3, r"-0\.001 s \(negative\)")]
# (id, flags): the paths an iteration's timing takes
LAYOUTS = [("one NPU", {}), ("reuse off", {"reuse": False}),
           ("tensor parallel", {"npu_num": 2, "npu_group": 1}),
           ("request placement", {"npu_num": 2, "attention_placement": "requests"}),
           ("pipeline", {"npu_num": 2, "parallel": "pipeline"}),
           ("micro-batches", {"npu_num": 2, "parallel": "pipeline", "micro_batches": 2}),
           ("PIM", {"pim_type": "local"})]
# (op, its part of the model as the message names it)
OPS = [("embed", "embedding"), ("ffn_up", "decoder layer"), ("attn_score", "decoder layer"),
       ("lm_head", "LM head")]


@pytest.mark.parametrize("bad,shown", BAD, ids=["nan", "inf", "negative"])
@pytest.mark.parametrize("op,part", OPS, ids=[o for o, _ in OPS])
@pytest.mark.parametrize("layout,flags", LAYOUTS, ids=[name for name, _ in LAYOUTS])
def test_a_bad_op_latency_names_the_op_and_the_engine(layout, flags, op, part, bad, shown):
    sim = Simulator(gpt2(**flags), tiny(), engine=Faulty(SPEC, op, bad))
    with pytest.raises(LatencyError) as caught:
        sim.run()
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert f"engine 'faulty-npu' timed op '{op}' ({part}" in message
    assert re.search(shown, message), message
    assert "an op's latency must be finite and >= 0 s" in message
    assert sim.num_iterations == 0  # nothing was recorded from the bad timing
    # The instance refuses to go on from there, with the same message.
    with pytest.raises(LatencyError, match=r"stopped at an earlier error: engine 'faulty-npu'"):
        sim.step()


@pytest.mark.parametrize("bad,pattern", [
    (np.nan, r"engine 'constant' timed op 'embed' \(embedding\) at nan s \(NaN\) for a batch "
             r"of 1 request\(s\), 8 token\(s\); an op's latency must be finite and >= 0 s"),
    (np.inf, r"engine 'constant' timed op 'embed' \(embedding\) at inf s \(infinite\)"),
    (-1.0, r"engine 'constant' timed op 'embed' \(embedding\) at -1\.0 s \(negative\)"),
    (0.0, r"iteration 0 \(1 request\(s\), 8 token\(s\)\) at t=0\.0 s took 0\.0 s: engine "
          r"'constant' timed its ops at 0\.0 s in all; an iteration must take > 0 s, or the "
          r"clock never moves"),
], ids=["nan", "inf", "negative", "zero"])
@pytest.mark.parametrize("how", ["run", "step"])
def test_a_custom_engine_with_bad_latencies_is_refused(bad, pattern, how):
    sim = Simulator(gpt2(), tiny(), engine=Constant(SPEC, bad=bad))
    with pytest.raises(LatencyError, match=pattern):
        sim.run() if how == "run" else sim.step()


def test_a_custom_engine_returning_nan_fails_check_engine_too():
    with pytest.raises(ConformanceError, match=r"engine 'constant' failed check 'finite'"):
        check_engine(Constant(SPEC, bad=np.nan))


def test_an_op_with_no_time_is_fine_while_the_iteration_moves_the_clock():
    # One op at 0 s (as an op with no work may take): the run goes on.
    ds = Simulator(gpt2(), tiny(), engine=Constant(SPEC, op="attn_residual", bad=0.0)).run()
    assert (ds.latency.values > 0).all() and np.isfinite(ds.finished_at.values).all()
    assert (ds.op_latency.sel(op="attn_residual").values == 0).all()
    # Every op at 0 s with tensor parallelism: the all-reduces still move the clock.
    ds = Simulator(gpt2(npu_num=2, npu_group=1), tiny(), engine=Constant(SPEC, bad=0.0)).run()
    assert (ds.latency.values > 0).all() and (ds.compute_latency.values == 0).all()


def test_an_iteration_lost_in_the_clocks_rounding_is_refused():
    late = Trace([9.9e7], [8], [2])  # a sub-ns iteration vanishes next to 9.9e7 s (ulp 1.5e-8)
    with pytest.raises(LatencyError, match=r"iteration 0 \(1 request\(s\), 8 token\(s\)\) at "
                                           r"t=99000000\.0 s took 1\.47e-10 s, which is "
                                           r"lost in rounding at that time \(the clock would not "
                                           r"move\)"):
        Simulator(gpt2(), late, engine=Constant(SPEC, seconds=1e-12)).run()


def test_a_scheduler_that_plans_nothing_without_the_clock_moving_is_stopped(monkeypatch):
    sim = Simulator(gpt2(), Trace([1.0], [8], [2]))
    monkeypatch.setattr(sim.scheduler, "next_event_at", lambda: 0.0)  # "now", forever
    with pytest.raises(RuntimeError, match=r"the scheduler made no progress: 1000 empty plans "
                                           r"in a row at t=0\.0 s"):
        sim.run()


def test_valid_runs_are_unchanged_by_the_guards():
    # A custom engine that behaves: same results through run() and step().
    a = Simulator(gpt2(), tiny(), engine=Constant(SPEC)).run()
    sim = Simulator(gpt2(), tiny(), engine=Constant(SPEC))
    while not sim.is_finished:
        sim.step()
    np.testing.assert_array_equal(a.t_end.values, sim.results().t_end.values)


# ---------------------------------------------------------------------- API types
def _submit(value):
    return Instance(build_instance(gpt2())).submit(value)


# (id, callable, exception type, regex the message must match)
API_CASES = [
    ("config as a model name", lambda: Simulator("gpt2"), TypeError,
     r"^Simulator\(config=\.\.\.\) must be a SimConfig or None, got str \(for a model by "
     r"name: SimConfig\.from_flags\(model_name='gpt2'\)\)$"),
    ("config as flags", lambda: Simulator({"model_name": "gpt2"}), TypeError,
     r"must be a SimConfig or None, got dict \(for flags: SimConfig\.from_flags\(\*\*flags\)\)"),
    ("trace as a list", lambda: Simulator(gpt2(), [[0.0, 8, 4]]), TypeError,
     r"^Simulator\(trace=\.\.\.\) must be a Trace or None, got list; build one with "
     r"Trace\(arrival_at, num_prompt_tokens, num_output_tokens\)"),
    ("trace as a dict", lambda: Simulator(gpt2(), {"arrival_at": [0.0]}), TypeError,
     r"must be a Trace or None, got dict"),
    ("trace as a DataFrame", lambda: Simulator(gpt2(), pd.DataFrame(
        {"arrival_at": [0.0], "num_prompt_tokens": [8], "num_output_tokens": [4]})),
     TypeError, r"must be a Trace or None, got DataFrame"),
    ("trace as a path", lambda: Simulator(gpt2(), "trace.tsv"), TypeError,
     r"must be a Trace or None, got str \(a trace file: load_trace\(path\)\)"),
    ("engine as a name", lambda: Simulator(gpt2(), tiny(), engine="npu"), TypeError,
     r"^Simulator\(engine='npu'\): engine must be an Engine instance, not a name; .*"
     r"registered engines: \[.*'npu'"),
    ("engine as a class", lambda: Simulator(gpt2(), tiny(), engine=NPUEngine), TypeError,
     r"Simulator\(engine=NPUEngine\): engine must be an Engine instance, not a class; pass "
     r"NPUEngine\(spec\)"),
    ("engine as a spec", lambda: Simulator(gpt2(), tiny(), engine=SPEC), TypeError,
     r"engine must be an Engine instance or None, got NPUSpec"),
    ("pim_mapping as a name", lambda: Simulator(gpt2(pim_type="local"), tiny(),
                                                pim_mapping="attention"), TypeError,
     r"pim_mapping=\.\.\.\) must be a callable policy\(op\) -> bool array \(True = PIM\) or "
     r"None, got str \(a named policy is the pim_mapping flag"),
    ("pim_mapping as a number", lambda: Simulator(gpt2(pim_type="local"), tiny(),
                                                  pim_mapping=1), TypeError,
     r"must be a callable policy\(op\) -> bool array .* got int$"),
    ("pim_mapping without PIM", lambda: Simulator(gpt2(), tiny(),
                                                  pim_mapping=lambda op: None), ValueError,
     r"pim_mapping=\.\.\.\) maps operators between NPU and PIM, but pim_type='none'"),
    ("run until nan", lambda: Simulator(gpt2(), tiny()).run(until=float("nan")), ValueError,
     r"^run\(until=nan\): until must be None or inf \(run to the end\) or a time >= 0 s$"),
    ("run until negative", lambda: Simulator(gpt2(), tiny()).run(until=-1), ValueError,
     r"run\(until=-1\): until must be None or inf \(run to the end\) or a time >= 0 s"),
    ("run until text", lambda: Simulator(gpt2(), tiny()).run(until="x"), TypeError,
     r"^run\(until='x'\): until must be None \(run to the end\) or a time in seconds, got str$"),
    ("run until bool", lambda: Simulator(gpt2(), tiny()).run(until=True), TypeError,
     r"run\(until=True\): .* got bool"),
    ("run progress not callable", lambda: Simulator(gpt2(), tiny()).run(progress=5), TypeError,
     r"run\(progress=5\): progress must be None or a callable"),
    ("submit a tuple", lambda: _submit((0, 0.0, 8, 4)), TypeError,
     r"^submit\(request=\.\.\.\) expects a Request \(Request\(request_id, arrival_at, "
     r"num_prompt_tokens, num_output_tokens\)\), got tuple$"),
    ("submit a trace", lambda: _submit(tiny()), TypeError, r"expects a Request .* got Trace"),
    ("submit at text", lambda: Simulator(gpt2(), tiny()).submit(
        Request(9, 0.5, 8, 2), at="soon"), TypeError,
     r"submit\(at='soon'\): the time must be a number of seconds or None, got str"),
    ("instance from a config", lambda: Instance(gpt2()), TypeError,
     r"Instance\(parts=\.\.\.\) must be the InstanceParts that build_instance\(config\) "
     r"returns, got SimConfig"),
]


@pytest.mark.parametrize("case,make,kind,pattern", API_CASES, ids=[c[0] for c in API_CASES])
def test_python_api_refuses_wrong_types(case, make, kind, pattern):
    with pytest.raises(kind, match=pattern) as caught:
        make()
    assert type(caught.value) is kind and len(str(caught.value).splitlines()) == 1


def test_valid_calls_still_work():
    Simulator()  # the defaults
    sim = Simulator(gpt2(), tiny())
    assert sim.run(until=0).sizes["iteration"] == 0
    assert sim.run(until=np.float64(0.001)).sizes["iteration"] >= 1
    assert sim.run(until=1).sizes["iteration"] == sim.num_iterations
    sim.run(progress=lambda n: None)
    assert sim.is_finished
    inst = Instance(build_instance(gpt2()))
    assert inst.submit(Request(7, 0.5, 8, 2), at=np.float64(0.75)) == 0
    seen = []
    Simulator(gpt2(pim_type="local"), tiny(),
              pim_mapping=lambda op: seen.append(op) or np.zeros(op.num_instances, bool)).step()
    assert seen
    Simulator(gpt2(), tiny(), engine=NPUEngine(SPEC)).run()


# ---------------------------------------------------------------------- sweeps
def run_sweep(tmp, **kwargs):
    kwargs.setdefault("client", "serial")
    kwargs.setdefault("progress", False)
    return sweep(gpt2(), kwargs.pop("trace", tiny()), out_dir=tmp, **kwargs)


SWEEP_CASES = [
    ("int and float", dict(npu_num=[1, 1.0]),
     r"^sweep axis 'npu_num' has the values 1 and 1\.0, which are equal; give each value "
     r"once$"),
    ("float and int", dict(npu_mem=[2, 4, 2.0]),
     r"sweep axis 'npu_mem' has the values 2 and 2\.0, which are equal"),
    ("same choice twice", dict(scheduling=["orca", "orca"]),
     r"^sweep axis 'scheduling' repeats the value 'orca'$"),
    ("same setting once read", dict(npu_mem=[2, 4], reuse=["on", True]),
     r"^sweep axis 'reuse' has the values 'on' and True, which are the same setting once "
     r"read \(SimConfig\.reuse=True\); give each value once$"),
    ("points equal once read", dict(points=[{"npu_mem": 2}, {"npu_mem": 2.0}]),
     r"^points\[1\] \(npu_mem=2\.0\) is the same simulation as points\[0\] once the values "
     r"are read \(npu_mem=2\.0\); give each point once$"),
]


@pytest.mark.parametrize("case,kwargs,pattern", SWEEP_CASES, ids=[c[0] for c in SWEEP_CASES])
def test_sweep_refuses_axis_values_that_are_the_same_setting(case, kwargs, pattern, tmp_path):
    with pytest.raises(ValueError, match=pattern):
        run_sweep(tmp_path, **kwargs)
    assert list(tmp_path.glob("points/*.nc")) == []  # nothing ran


def _nan_at_20_gib(monkeypatch):
    """The NPU engine times ffn_up at NaN on a 20 GiB device: such a point
    passes validation (nothing is timed) and fails while running."""
    real = NPUEngine.time_op

    def time_op(self, op):
        timing = real(self, op)
        if self.spec.memory_bytes == 20 * GIB and op.name == "ffn_up":
            nan = np.full_like(timing.latency, np.nan)
            return OpTiming(nan, nan, nan)
        return timing

    monkeypatch.setattr(NPUEngine, "time_op", time_op)


def _check_one_failed(ds, out: Path, error: str):
    assert list(ds.status.values) == ["failed", "ok"]
    assert error in str(ds.error.values[0]) and len(str(ds.error.values[0]).splitlines()) == 1
    assert np.isnan(ds.ttft_mean.values[0]) and np.isfinite(ds.ttft_mean.values[1])
    assert ds.attrs["num_failed"] == 1
    xr.testing.assert_identical(xr.load_dataset(out / "sweep.nc"), ds)


def test_a_point_failing_while_running_still_writes_the_sweep(monkeypatch, tmp_path):
    _nan_at_20_gib(monkeypatch)
    with pytest.warns(SweepWarning, match=r"1 of 2 sweep points failed .*\[npu_mem=20\] "
                                          r"LatencyError: engine 'npu' timed op 'ffn_up'"):
        ds = run_sweep(tmp_path, npu_mem=[20, 24])
    _check_one_failed(ds, tmp_path, "LatencyError: engine 'npu' timed op 'ffn_up' "
                                    "(decoder layer) at nan s (NaN)")


def test_a_point_failing_on_dask_workers_still_writes_the_sweep(monkeypatch, tmp_path):
    from distributed import Client, LocalCluster

    _nan_at_20_gib(monkeypatch)  # threads of this process see the patch
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client, \
            pytest.warns(SweepWarning, match="1 of 2 sweep points failed"):
        ds = run_sweep(tmp_path, client=client, npu_mem=[20, 24])
    _check_one_failed(ds, tmp_path, "LatencyError: engine 'npu' timed op 'ffn_up'")


@pytest.mark.parametrize("exc,error", [
    (SystemExit(3), "SystemExit: 3"),
    (RuntimeError("line one\nline two"), "RuntimeError: line one"),
    (ValueError("bad \udcff byte"), "ValueError: bad \\udcff byte"),
], ids=["SystemExit", "two lines", "unencodable"])
def test_any_failure_of_a_point_is_recorded_and_the_sweep_written(exc, error, monkeypatch,
                                                                  tmp_path):
    real = Simulator.run

    def run(self, *args, **kwargs):
        if self.config.memory.npu_mem == 20:
            raise exc
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Simulator, "run", run)
    with pytest.warns(SweepWarning, match="1 of 2 sweep points failed"):
        ds = run_sweep(tmp_path, npu_mem=[20, 24])
    _check_one_failed(ds, tmp_path, error)


def test_an_unreadable_point_file_is_run_again(tmp_path):
    first = run_sweep(tmp_path, npu_num=[1, 2])
    path = Path(str(first.result_path.values[0]))
    path.write_bytes(b"\x89HDF\r\n\x1a\n garbage")
    again = run_sweep(tmp_path, npu_num=[1, 2])
    assert list(again.resumed.values) == [False, True]
    assert (again.status == "ok").all()


SCRIPT = """
from llmsim_nb import SimConfig, sweep
from llmsim_nb.workload import Trace

def main():
    ds = sweep(SimConfig.from_flags(model_name="gpt2"), Trace([0.0], [8], [2]), n_workers=1,
               progress=False, out_dir={out!r}, npu_num=[1, 2])
    print("statuses", list(map(str, ds.status.values)))
"""


def _run_script(path: Path, text: str):
    path.write_text(textwrap.dedent(text))
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=180, cwd=path.parent)


def test_a_sweep_at_the_top_level_of_a_script_is_explained_in_one_line(tmp_path):
    result = _run_script(tmp_path / "unguarded.py",
                         SCRIPT.format(out=str(tmp_path / "a")) + "\nmain()\n")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == (f"RuntimeError: sweep() is called at the top level of "
                    f"{tmp_path / 'unguarded.py'} (line 10) without an 'if __name__ == "
                    f"\"__main__\":' guard; its worker processes re-import that script and "
                    f"would start the sweep again in each worker. Put the call under the "
                    f"guard (or pass client='serial' to run without worker processes)")
    assert "Nanny failed to start" not in result.stderr
    assert not (tmp_path / "a" / "sweep.nc").exists()


def test_a_guarded_sweep_in_a_script_runs_on_workers(tmp_path):
    result = _run_script(tmp_path / "guarded.py", SCRIPT.format(out=str(tmp_path / "b"))
                         + '\nif __name__ == "__main__":\n    main()\n')
    assert result.returncode == 0, result.stderr
    assert "statuses ['ok', 'ok']" in result.stdout


# ---------------------------------------------------------------------- dashboard
@pytest.fixture
def dash():
    pytest.importorskip("ipywidgets")
    import matplotlib

    matplotlib.use("Agg")
    from llmsim_nb.viz.dashboard import Dashboard

    return Dashboard(flags={"model_name": "gpt2"},
                     workload={"num_requests": 4, "arrival_rate": 50.0},
                     plots=("throughput", "gantt"))


# (control, bad value, regex of dash.error)
WIDGET_CASES = [
    ("npu_mem", "abc", r"^npu_mem='abc' is not a number \(leave it blank for the default\)$"),
    ("npu_mem", "inf", r"^npu_mem='inf' must be a finite number \(leave it blank"),
    ("npu_mem", "nan", r"^npu_mem='nan' must be a finite number"),
    ("npu_mem", "-2", r"npu_mem=-2\.0 is out of range \(must be > 0\.0\)"),
    ("npu_num", -1, r"npu_num=-1 is out of range \(must be >= 1\)"),
    ("block_size", 0, r"block_size=0 is out of range \(must be >= 1\)"),
    ("max_batch", -5, r"max_batch=-5 is out of range \(must be >= 0\)"),
    ("arrival_rate", float("nan"), r"arrival_rate must be a finite number > 0 req/s, got nan"),
    ("num_requests", 0, r"num_requests must be an integer >= 1, got 0"),
    ("num_requests", 10 ** 9, r"num_requests must be <= 1000000 in the dashboard, got "
                              r"1000000000"),
]


@pytest.mark.parametrize("flag,value,pattern", WIDGET_CASES,
                         ids=[f"{f}={v!r}" for f, v, _ in WIDGET_CASES])
def test_a_bad_widget_value_is_shown_and_cleared_by_a_good_one(dash, flag, value, pattern):
    good = dash.controls[flag].value
    dash.controls[flag].value = value  # the observer rebuilds: nothing may escape
    assert dash.sim is None and dash.error is not None
    assert re.search(pattern, dash.error), dash.error
    assert "Invalid setting:" in dash.message.value and "Traceback" not in dash.message.value
    for press in ("step", "run_n", "run_to_end", "reset"):
        dash.buttons[press].click()  # none raises; the setting's error stays shown
    assert dash.error is not None and dash.iteration == 0
    dash.controls[flag].value = good
    assert dash.error is None and dash.message.value == "" and dash.sim is not None
    dash.step()
    assert dash.iteration == 1


def test_an_engine_error_while_stepping_is_shown_not_raised(dash, monkeypatch):
    _nan_at_20_gib(monkeypatch)
    dash.controls["npu_mem"].value = "20"  # valid: builds, fails once it times an op
    assert dash.error is None and dash.sim is not None
    dash.buttons["step"].click()
    assert dash.error.startswith("engine 'npu' timed op 'ffn_up' (decoder layer) at nan s")
    assert "Simulation error:" in dash.message.value and dash.iteration == 0
    dash.buttons["run_to_end"].click()  # still refused, still no exception
    assert "stopped at an earlier error" in dash.error
    dash.controls["npu_mem"].value = ""  # back to the preset's memory: cleared
    assert dash.error is None
    dash.buttons["run_to_end"].click()
    assert dash.sim.is_finished and dash.error is None


def test_any_exception_in_a_callback_is_shown_and_the_next_good_action_clears_it(
        dash, monkeypatch):
    real = type(dash.sim).step
    calls = []

    def flaky(self):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("the scheduler made no progress\nsecond line")
        return real(self)

    monkeypatch.setattr(type(dash.sim), "step", flaky)
    dash.buttons["step"].click()
    assert dash.error == "RuntimeError: the scheduler made no progress"
    dash.buttons["step"].click()  # works: the old error is cleared
    assert dash.error is None and dash.message.value == "" and dash.iteration == 1
    dash.run_n(0)
    assert dash.error == "N must be an integer >= 1, got 0"
    dash.run_n(2)
    assert dash.error is None and dash.iteration == 3


def test_a_plot_that_fails_is_shown_not_raised(dash, monkeypatch):
    def broken(self, name, ax):
        raise KeyError(name)

    monkeypatch.setattr(type(dash), "_draw", broken)
    dash.buttons["step"].click()
    assert dash.error == "KeyError: 'throughput'" and dash.iteration == 1


@pytest.mark.parametrize("text, pattern", [
    ("base: {model_name: gpt2}\npoints: [5]\n", r"points must be a list of mappings of flags, got \[5\]"),
    ("base: {model_name: gpt2}\naxes: {npu_num: [1, 2]}\nout_dir: [1]\n",
     r"out_dir must be a non-empty string, got \[1\]"),
    ("base: {model_name: gpt2}\naxes: {npu_num: [1, 2]}\nvalidate: \"no\"\n",
     r"validate must be true or false, got 'no'"),
    ("base: {model_name: gpt2}\naxes: {npu_num: [1, 2]}\nscheduler_address: 5\n",
     r"scheduler_address must be a non-empty string, got 5"),
])
def test_sweep_files_with_values_of_the_wrong_type_are_refused(tmp_path, text, pattern):
    from llmsim_nb.sweeps.spec import read_sweep_yaml
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=pattern):
        read_sweep_yaml(path)
