"""The llmsim command line end to end."""

import json
import subprocess
import sys

import pytest
import xarray as xr

from llmsim_nb.cli.main import main

SEED_TRACE = "share-gpt-req100-rate10.tsv"


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "llmsim_nb.cli", *args],
                          capture_output=True, text=True, timeout=120)


def test_run_without_arguments_simulates_the_default(capsys):
    assert main(["run"]) == 0
    out = capsys.readouterr().out
    assert "gpt3-6.7b on npu-128x128" in out
    assert "requests finished   100 / 100" in out


def test_outputs_are_seed_compatible(tmp_path, capsys):
    prefix = tmp_path / "out" / "gpt7b"
    assert main(["run", "--model_name", "gpt2", "--output", str(prefix), "--fast_run"]) == 0
    tput = (tmp_path / "out" / "gpt7b-throughput.tsv").read_text().splitlines()
    assert tput[0] == "time_duration\tprompt_throughput\tgeneration_throughput"
    assert tput[1].startswith("0.5\t")
    sim_time = (tmp_path / "out" / "gpt7b-simulation-time.tsv").read_text().splitlines()
    assert sim_time[0].split("\t") == ["execution_engine", "graph_converter", "astra-sim",
                                       "scheduler", "total_simulation_time"]
    requests = (tmp_path / "out" / "gpt7b-requests.csv").read_text().splitlines()
    assert len(requests) == 101 and requests[0].startswith("request_id,arrival_at")
    ds = xr.load_dataset(str(prefix) + ".nc")
    assert ds.sizes["request"] == 100
    # The throughput file's tokens add up to the run's tokens.
    prompt = sum(float(line.split("\t")[1]) * 0.5 for line in tput[1:])
    assert prompt == pytest.approx(float(ds.num_prefill_tokens.sum()))


def test_seed_command_line_runs(tmp_path, shared_data):
    trace = shared_data / "traces" / SEED_TRACE
    result = run_cli("run", "--model_name", "llama-7b", "--npu_num", "1", "--npu_group", "1",
                     "--npu_mem", "24", "--max_batch", "0", "--batch_delay", "0",
                     "--scheduling", "orca", "--parallel", "hybrid", "--kv_manage", "vllm",
                     "--pim_type", "none", "--dataset", str(trace), "--output",
                     str(tmp_path / "llama7b"), "--fast_run")
    assert result.returncode == 0, result.stderr
    assert "requests finished   100 / 100" in result.stdout


def test_config_file_and_flags(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model_name: gpt2\nscheduling: chunked\nmax_num_batched_tokens: 64\n")
    assert main(["run", "--config", str(cfg), "--max_batch", "8", "--quiet"]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("args,message", [
    (["--model_name", "gpt5"], "gpt5"),
    (["--scheduling", "fifo"], "scheduling='fifo' is not one of"),
    (["--block_size", "0"], "block_size=0 is out of range (must be >= 1)"),
    (["--npu_num", "3", "--attention_placement", "heads"], "must divide"),
    (["--network", "nonexistent_net.json"], "nonexistent_net"),
    (["--npu_num", "8", "--network", "gpu_n4.json"], "has 4 devices but npu_num=8"),
    (["--pim_type", "pool", "--npu_num", "4", "--pim_num", "3"], "pim_num=3 must divide"),
    (["--sub_batch"], "sub_batch=True needs pim_type"),
    (["--hardware", "tpu-v9"], "tpu-v9"),
    (["--dataset", "/nonexistent/trace.tsv"], "trace.tsv"),
    (["--npu_mem", "-1"], "npu_mem=-1.0 is out of range (must be > 0"),
    (["--npu_num", "two"], "invalid int value"),
    (["--config", "/nonexistent.yaml"], "does not exist"),
])
def test_bad_input_is_one_line_and_nonzero(args, message):
    result = run_cli("run", *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_run_help_states_every_numeric_flags_range(capsys):
    """The ranges SimConfig checks are the ones --help documents."""
    from llmsim_nb.cli.run import RUN_FLAGS, flag_ranges
    ranges = flag_ranges()
    assert ranges["npu_num"] == "range 1 .. 65536" and ranges["npu_mem"].endswith("GiB")
    numeric = {name for name, kind, _ in RUN_FLAGS if kind in (int, float)}
    assert numeric <= set(ranges), numeric - set(ranges)
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "range 1 .. 65536" in capsys.readouterr().out.replace("\n", " ")


def test_run_writes_trace_events_and_checks_the_path_first(tmp_path):
    path = tmp_path / "timeline.json"
    assert main(["run", "--model_name", "gpt2", "--quiet", "--trace_events", str(path)]) == 0
    events = json.loads(path.read_text())["traceEvents"]
    assert any(e.get("ph") == "X" and e.get("name", "").startswith("iteration") for e in events)
    folder = tmp_path / "a-folder"
    folder.mkdir()
    result = run_cli("run", "--model_name", "gpt2", "--trace_events", str(folder))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
