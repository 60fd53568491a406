"""The CLI's workload flags, ``llmsim list``, ``--version`` and the trace tools."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import numpy as np
import pytest

from llmsim_nb._version import __version__
from llmsim_nb.cli.main import main
from llmsim_nb.workload import Trace, synthetic_trace
from llmsim_nb.workload.generators import constant_arrivals
from llmsim_nb.workload.lengths import Fixed, Uniform, alpaca_like, sharegpt_like
from llmsim_nb.workload.recipe import WorkloadRecipe

GPT2 = ["run", "--model_name", "gpt2"]


def _trace_file(tmp_path, rows, name="t.tsv"):
    """A seed TSV of (prompt, output, arrival seconds) rows."""
    path = tmp_path / name
    lines = ["input_toks\toutput_toks\tarrival_time_ns"]
    lines += [f"{p}\t{o}\t{int(t * 1e9)}" for p, o, t in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


# ------------------------------------------------------------------ --version, list
def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out == f"llmsim_nb {__version__}\n"


def test_list_models_one_line_each(capsys):
    from llmsim_nb.models.catalog import list_models
    assert main(["list", "models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list_models()
    assert "gpt2           124M parameters, 12 layers, hidden 768, context 1024" in lines
    assert any(re.fullmatch(r"llama-2-70b +69\.0B parameters, 80 layers, hidden 8192, "
                            r"context 4096", line) for line in lines)


def test_list_hardware_one_line_each(capsys):
    from llmsim_nb.engines.hardware import list_hardware
    assert main(["list", "hardware"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list_hardware()
    by_name = {line.split()[0]: " ".join(line.split()[1:]) for line in lines}
    # 128 x 128 MACs x 2 FLOP x 1 GHz = 32.77 TFLOP/s; 24 GiB of memory.
    assert by_name["npu-128x128"] == "npu engine, 24 GiB, 32.77 TFLOP/s 16-bit peak"
    assert by_name["a100-80gb"] == "gpu engine, 80 GiB, 312 TFLOP/s fp16 peak"
    assert by_name["h100-sxm-fp8"] == "gpu engine, 80 GiB, 1979 TFLOP/s fp8 peak"


def test_list_networks_one_line_each(capsys):
    from llmsim_nb.network import list_network_presets
    assert main(["list", "networks"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list_network_presets()
    by_name = {line.split()[0]: " ".join(line.split()[1:]) for line in lines}
    assert by_name["gpu_n4"] == "4 devices: FullyConnected 4"
    assert by_name["gpu_n1"] == "1 device: FullyConnected 1"
    assert by_name["sample_Torus2D"] == "16 devices: Ring 4 x Ring 4"


def test_list_needs_a_known_kind(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["list", "gpus"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "invalid choice: 'gpus'" in err and "'networks'" in err


# ------------------------------------------------------------------ help and summary
def test_run_help_shows_the_config_defaults(capsys):
    from llmsim_nb.cli.run import flag_defaults
    from llmsim_nb.config import SimConfig
    defaults = flag_defaults()
    values = SimConfig().to_flags()
    for flag, text in defaults.items():
        value = values[flag]
        expected = ("on" if value is True else f"{value:g}" if isinstance(value, float)
                    else str(value))
        assert text == f"default {expected}", flag
    assert defaults["model_name"] == "default gpt3-6.7b"
    assert defaults["scheduling"] == "default auto" and defaults["block_size"] == "default 16"
    assert "npu_mem" not in defaults and "congestion" not in defaults  # None / off
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default 1; range 1 .. 65536)" in out
    assert "(default gpt3-6.7b)" in out and "(default npu-128x128)" in out


def test_workload_help_defaults_are_the_recipes():
    from llmsim_nb.cli.run import GENERATE_FLAGS, WORKLOAD_FLAGS
    helps = {name: text for name, _, text in WORKLOAD_FLAGS}
    assert GENERATE_FLAGS == tuple(f.name for f in dataclasses.fields(WorkloadRecipe))
    for f in dataclasses.fields(WorkloadRecipe):
        shown = "1" if f.name == "cv" else (f.default if isinstance(f.default, str)
                                            else f"{f.default:g}")
        assert helps[f.name].endswith(f"(default {shown})"), f.name
    # cv None means 1 for gamma:
    gamma = WorkloadRecipe(arrival="gamma", num_requests=50, lengths="fixed:1,0")
    explicit = WorkloadRecipe(arrival="gamma", cv=1.0, num_requests=50, lengths="fixed:1,0")
    np.testing.assert_array_equal(gamma.build(3).arrival_at, explicit.build(3).arrival_at)


def test_summary_names_layout_network_and_engine(capsys):
    assert main([*GPT2, "--npu_num", "2", "--npu_group", "1", "--num_requests", "3",
                 "--lengths", "fixed:8,2"]) == 0
    out = capsys.readouterr().out
    assert "layout              TP 2 x PP 1, network " in out
    assert re.search(r"layout +TP 2 x PP 1, network \S+, npu engine", out)


# ------------------------------------------------------------------ generation
def test_constant_arrivals_are_exact():
    rng = np.random.default_rng(0)
    assert constant_arrivals(rng, 5, 4.0).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    np.testing.assert_array_equal(constant_arrivals(rng, 7, 3.0), np.arange(7) / 3.0)
    before = rng.bit_generator.state
    constant_arrivals(rng, 10, 2.0)
    assert rng.bit_generator.state == before  # draws nothing


def test_recipe_constant_fixed_is_hand_computable():
    t = WorkloadRecipe(num_requests=4, arrival="constant", rate=4,
                       lengths="fixed:10,3").build(7)
    assert t.arrival_at.tolist() == [0.0, 0.25, 0.5, 0.75]
    assert t.num_prompt_tokens.tolist() == [10] * 4
    assert t.num_output_tokens.tolist() == [3] * 4
    assert t.source == ("generated (--num_requests 4 --arrival constant --rate 4 "
                        "--lengths fixed:10,3 --seed 7)")


def test_cli_generates_the_recipes_trace(tmp_path, capsys):
    prefix = tmp_path / "run"
    assert main([*GPT2, "--num_requests", "4", "--arrival", "constant", "--rate", "4",
                 "--lengths", "fixed:16,2", "--output", str(prefix)]) == 0
    out = capsys.readouterr().out
    assert ("trace: generated (--num_requests 4 --arrival constant --rate 4 "
            "--lengths fixed:16,2 --seed 0)") in out
    assert "requests finished   4 / 4" in out
    rows = (tmp_path / "run-requests.csv").read_text().splitlines()
    header = rows[0].split(",")
    col = {name: [row.split(",")[header.index(name)] for row in rows[1:]]
           for name in ("arrival_at", "num_prompt_tokens", "num_output_tokens")}
    assert [float(v) for v in col["arrival_at"]] == [0.0, 0.25, 0.5, 0.75]
    assert col["num_prompt_tokens"] == ["16"] * 4 and col["num_output_tokens"] == ["2"] * 4


def test_same_flags_and_seed_give_the_same_trace(tmp_path, capsys):
    flags = dict(num_requests=60, arrival="gamma", cv=2.5, rate=7.0, lengths="uniform:4,90")
    a, b = WorkloadRecipe.from_flags(**flags).build(11), WorkloadRecipe(**flags).build(11)
    assert a == b
    c = WorkloadRecipe(**flags).build(12)
    assert not np.array_equal(a.arrival_at, c.arrival_at)
    # A Generator works too: the same stream gives the same trace (without the seed noted).
    g = WorkloadRecipe(**flags).build(np.random.default_rng(11))
    np.testing.assert_array_equal(g.arrival_at, a.arrival_at)
    assert "--seed" not in g.source
    # ... and through the CLI, bit for bit.
    args = [*GPT2, "--num_requests", "12", "--arrival", "gamma", "--cv", "2", "--rate", "20",
            "--lengths", "uniform:4,90,1,20", "--seed", "5", "--quiet", "--output"]
    assert main([*args, str(tmp_path / "a")]) == 0
    assert main([*args, str(tmp_path / "b")]) == 0
    assert (tmp_path / "a-requests.csv").read_text() == (tmp_path / "b-requests.csv").read_text()


def test_poisson_and_gamma_are_synthetic_trace():
    recipe = WorkloadRecipe(num_requests=30, rate=5.0, lengths="alpaca")
    t = recipe.build(4)
    ref = synthetic_trace(np.random.default_rng(4), 30, 5.0, *alpaca_like())
    np.testing.assert_array_equal(t.arrival_at, ref.arrival_at)
    np.testing.assert_array_equal(t.num_prompt_tokens, ref.num_prompt_tokens)
    t = WorkloadRecipe(num_requests=30, arrival="gamma", cv=0.5, rate=5.0).build(4)
    ref = synthetic_trace(np.random.default_rng(4), 30, 5.0, *sharegpt_like(), arrival="gamma",
                          cv=0.5)
    np.testing.assert_array_equal(t.arrival_at, ref.arrival_at)
    np.testing.assert_array_equal(t.num_output_tokens, ref.num_output_tokens)


def test_uniform_lengths_one_or_two_ranges():
    both = WorkloadRecipe(num_requests=2000, lengths="uniform:5,9").build(0)
    for col in (both.num_prompt_tokens, both.num_output_tokens):
        assert col.min() == 5 and col.max() == 9
    split = WorkloadRecipe(num_requests=2000, lengths="uniform:5,9,0,2").build(0)
    assert split.num_prompt_tokens.min() == 5 and split.num_prompt_tokens.max() == 9
    assert split.num_output_tokens.min() == 0 and split.num_output_tokens.max() == 2
    ref = synthetic_trace(np.random.default_rng(0), 2000, 10.0, Uniform(5, 9), Uniform(0, 2))
    np.testing.assert_array_equal(split.num_output_tokens, ref.num_output_tokens)
    fixed = WorkloadRecipe(num_requests=3, lengths="fixed:1,0").build(0)
    ref = synthetic_trace(np.random.default_rng(0), 3, 10.0, Fixed(1), Fixed(0))
    np.testing.assert_array_equal(fixed.arrival_at, ref.arrival_at)


def test_recipe_is_frozen_and_from_flags_takes_none_as_default():
    r = WorkloadRecipe.from_flags(num_requests=None, arrival=None, rate=2, cv=None,
                                  lengths=None)
    assert r == WorkloadRecipe(rate=2.0) and r.rate == 2.0 and isinstance(r.rate, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.rate = 3.0  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"unknown flag\(s\) \['seed'\]"):
        WorkloadRecipe.from_flags(seed=1)
    with pytest.raises(ValueError, match="rng must be a numpy.random.Generator or a seed"):
        WorkloadRecipe().build(-1)


# ------------------------------------------------------------------ bad flags
@pytest.mark.parametrize("args, message", [
    (["--cv", "2"], "--cv 2 applies only to --arrival gamma; the arrival process is poisson"),
    (["--arrival", "constant", "--cv", "0"], "--cv 0 applies only to --arrival gamma"),
    (["--arrival", "gamma", "--cv", "-1"], "--cv -1: must be a finite number >= 0"),
    (["--lengths", "fixed:10"], "--lengths 'fixed:10': fixed takes 2 whole numbers"),
    (["--lengths", "fixed:0,5"], "--lengths 'fixed:0,5': prompts need at least 1 token"),
    (["--lengths", "fixed:1.5,2"], "--lengths 'fixed:1.5,2': fixed takes 2 whole numbers"),
    (["--lengths", "uniform:1,2,3"], "--lengths 'uniform:1,2,3': uniform takes 2 or 4"),
    (["--lengths", "uniform:9,5"], "the prompt range 9..5 is empty"),
    (["--lengths", "uniform:1,5,7,3"], "the output range 7..3 is empty"),
    (["--lengths", "zipf"], "--lengths 'zipf' is not a length spec; allowed: sharegpt, alpaca"),
    (["--lengths", "sharegpt:5"], "sharegpt takes no numbers"),
    (["--rate", "0"], "--rate 0: must be a finite number > 0 (requests per second)"),
    (["--rate", "inf"], "--rate inf: must be a finite number > 0"),
    (["--rate", "1e-9", "--num_requests", "5"], "arrivals must stay below 1e+08 s"),
    (["--num_requests", "0"], "--num_requests 0: must be a whole number between 1 and"),
    (["--arrival", "weibull"], "--arrival 'weibull' is not an arrival process; allowed: "
                               "poisson, gamma, constant"),
    (["--dataset", "x.tsv", "--num_requests", "5"], "--dataset 'x.tsv' and --num_requests "
                                                    "are alternatives"),
    (["--dataset", "x.tsv", "--lengths", "fixed:1,1"], "--dataset 'x.tsv' and --lengths"),
    (["--num_requests", "5", "--limit", "2"], "--limit 2 cuts a trace that is read"),
    (["--num_requests", "5", "--sort"], "--sort sorts a --dataset file"),
    (["--sort"], "without --dataset the packaged trace is already in arrival order"),
    (["--limit", "0"], "--limit 0: must be a whole number >= 1"),
    (["--lengths", "uniform:1500,1600", "--num_requests", "3", "--drop_too_long"],
     "--drop_too_long would drop all 3 requests: each is longer than max_model_len=1024"),
])
def test_bad_workload_flag_is_one_line_before_simulating(args, message, capsys):
    assert main([*GPT2, *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing simulated, nothing printed
    assert captured.err.startswith("llmsim: error: ")
    assert len(captured.err.strip().splitlines()) == 1
    assert message in captured.err, captured.err


def test_bad_flag_from_the_console_script():
    result = subprocess.run([sys.executable, "-m", "llmsim_nb.cli", "run", "--cv", "3"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == ("llmsim: error: --cv 3 applies only to --arrival gamma; "
                                     "the arrival process is poisson, whose gaps' cv is always 1")


# ------------------------------------------------------------------ trace tools
def _t() -> Trace:
    return Trace([0.0, 1.0, 1.0, 3.0], [5, 60, 7, 80], [1, 2, 3, 4], source="t")


def test_head_filter_sort_scale_rate():
    t = _t()
    h = t.head(2)
    assert h.arrival_at.tolist() == [0.0, 1.0] and h.source == "t (first 2)"
    f = t.filter(t.num_prompt_tokens > 10, label="long prompts")
    assert f.num_prompt_tokens.tolist() == [60, 80] and f.arrival_at.tolist() == [1.0, 3.0]
    assert f.source == "t (kept 2 of 4: long prompts)" and f[1].request_id == 1
    g = t.filter(lambda tr: tr.num_output_tokens % 2 == 1)
    assert g.num_output_tokens.tolist() == [1, 3] and g.source == "t (kept 2 of 4)"
    s = t.sort()
    assert s.num_prompt_tokens.tolist() == [5, 60, 7, 80]  # stable: the tie keeps its order
    assert s.source == "t (sorted by arrival)"
    x = t.scale_rate(4)
    assert x.arrival_at.tolist() == [0.0, 0.25, 0.25, 0.75] and x.source == "t (rate x4)"
    assert x.num_prompt_tokens.tolist() == t.num_prompt_tokens.tolist()
    assert t.scale_rate(0.5).arrival_at.tolist() == [0.0, 2.0, 2.0, 6.0]
    assert t.arrival_at.tolist() == [0.0, 1.0, 1.0, 3.0]  # the original is unchanged


@pytest.mark.parametrize("keep, message", [
    (np.array([1, 0, 1, 0]), "boolean mask of shape \\(4,\\)"),
    (np.array([True, False]), "boolean mask of shape \\(4,\\)"),
    (lambda tr: [True] * 3, "boolean mask of shape \\(4,\\)"),
    (np.zeros(4, dtype=bool), "keeps none of the 4 requests"),
])
def test_filter_refuses_bad_masks(keep, message):
    with pytest.raises(ValueError, match=f"Trace.filter: .*{message}"):
        _t().filter(keep)


@pytest.mark.parametrize("factor", [0, -2.0, float("nan"), float("inf"), True, "2"])
def test_scale_rate_refuses_bad_factors(factor):
    with pytest.raises(ValueError, match="Trace.scale_rate: factor must be a finite number > 0"):
        _t().scale_rate(factor)


def test_scale_rate_keeps_arrivals_in_range():
    with pytest.raises(ValueError, match="moves the last arrival to 3e\\+09 s; arrivals must "
                                         "stay below 1e\\+08 s"):
        _t().scale_rate(1e-9)


# ------------------------------------------------------------------ --limit --drop_too_long --sort
def test_drop_too_long_prints_the_count(tmp_path, capsys):
    path = _trace_file(tmp_path, [(10, 5, 0.0), (1000, 30, 0.5), (20, 5, 1.0), (3000, 1, 2.0)])
    assert main([*GPT2, "--dataset", path]) == 2
    err = capsys.readouterr().err
    assert "2 of 4 requests are longer than max_model_len=1024" in err
    assert "--drop_too_long" in err and len(err.strip().splitlines()) == 1
    assert main([*GPT2, "--dataset", path, "--drop_too_long"]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == ("llmsim: --drop_too_long dropped 2 of 4 requests longer "
                                    "than max_model_len=1024 tokens (gpt2's context)")
    assert "requests finished   2 / 2" in captured.out
    assert "(kept 2 of 4: prompt + output <= max_model_len=1024)" in captured.out
    assert main([*GPT2, "--dataset", path, "--drop_too_long", "--max_model_len", "24"]) == 0
    captured = capsys.readouterr()
    assert "dropped 3 of 4 requests longer than max_model_len=24 tokens (as given)" \
        in captured.err
    assert "requests finished   1 / 1" in captured.out


def test_drop_too_long_on_generated_and_default_traces(capsys):
    assert main([*GPT2, "--num_requests", "40", "--lengths", "uniform:100,600",
                 "--drop_too_long"]) == 0
    captured = capsys.readouterr()
    dropped = int(re.search(r"dropped (\d+) of 40", captured.err).group(1))
    expected = WorkloadRecipe(num_requests=40, lengths="uniform:100,600").build(0)
    too_long = int(((expected.num_prompt_tokens + expected.num_output_tokens) > 1024).sum())
    assert dropped == too_long > 0
    assert f"requests finished   {40 - dropped} / {40 - dropped}" in captured.out
    assert main(["run", "--drop_too_long", "--limit", "3"]) == 0
    assert "dropped 0 of 3 requests" in capsys.readouterr().err


def test_sort_a_file_whose_arrivals_go_backwards(tmp_path, capsys):
    path = _trace_file(tmp_path, [(10, 5, 0.0), (20, 5, 2.0), (30, 5, 1.0), (40, 5, 2.0)])
    assert main([*GPT2, "--dataset", path]) == 2
    err = capsys.readouterr().err
    assert "goes backwards" in err and "(llmsim run: --sort)" in err
    assert main([*GPT2, "--dataset", path, "--sort", "--output", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "requests finished   4 / 4" in out and f"trace: {path} (sorted by arrival)" in out
    rows = (tmp_path / "s-requests.csv").read_text().splitlines()
    header = rows[0].split(",")
    prompts = [row.split(",")[header.index("num_prompt_tokens")] for row in rows[1:]]
    assert prompts == ["10", "30", "20", "40"]  # stable: 20 stays before 40 at 2.0 s


def test_limit(tmp_path, capsys):
    path = _trace_file(tmp_path, [(10, 5, 0.0), (20, 5, 1.0), (30, 5, 2.0), (40, 5, 3.0)])
    assert main([*GPT2, "--dataset", path, "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "requests finished   2 / 2" in out and f"trace: {path} (first 2)" in out
    assert main([*GPT2, "--dataset", path, "--limit", "10"]) == 0  # at most N
    assert "requests finished   4 / 4" in capsys.readouterr().out
    assert main(["run", "--limit", "5"]) == 0
    out = capsys.readouterr().out
    assert "requests finished   5 / 5" in out and "requests) (first 5)" in out
