"""Hardened at every door: flag ranges, config JSON, output paths, table sizes.

Each door has a table of (input, pattern the one-line ValueError must match):
the pattern names the flag (or field) and the value given. Every numeric
field's documented range (``metadata["range"]``) is listed here once more, so
a change of range is a visible change of this file.
"""

import dataclasses
import json
import math
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmsim_nb import SimConfig
from llmsim_nb.cli.main import main
from llmsim_nb.config import FLAG_FIELDS, MemoryConfig, SchedulerConfig, SystemConfig
from llmsim_nb.results import files
from llmsim_nb.results.files import (MAX_THROUGHPUT_BUCKETS, check_output_prefix,
                                     check_throughput_buckets, throughput_over_time,
                                     write_outputs)

F = SimConfig.from_flags
CLASSES = {None: SimConfig, "scheduler": SchedulerConfig, "memory": MemoryConfig,
           "system": SystemConfig}

# name (the flag, or the field for the three MemoryConfig fields without one):
# (lo, hi, integer, positive) -- the documented range, inclusive.
RANGES = {
    "max_batch": (0, 2 ** 20, True, False),
    "batch_delay": (0.0, 86400.0, False, False),
    "block_size": (1, 2 ** 16, True, False),
    "max_num_batched_tokens": (1, 2 ** 24, True, False),
    "long_prefill_token_threshold": (0, 2 ** 24, True, False),
    "kv_offload_gib": (0.0, 16384.0, False, False),
    "power_cap_w": (1.0, 1e5, False, True),
    "device_price_per_hour": (0.0, 1e4, False, False),
    "carbon_g_per_kwh": (0.0, 1e4, False, False),
    "max_model_len": (1, 2 ** 24, True, False),
    "npu_mem": (0.001, 16384.0, False, True),
    "host_bandwidth": (1e6, 1e15, False, True),
    "host_latency": (0.0, 1.0, False, False),
    "activation_reserve": (0.0, 0.9, False, False),
    "gpu_memory_utilization": (0.01, 1.0, False, True),
    "num_kv_blocks": (1, 2 ** 31 - 1, True, False),
    "npu_num": (1, 2 ** 16, True, False),
    "npu_group": (1, 2 ** 16, True, False),
    "micro_batches": (0, 2 ** 20, True, False),
    "pim_channels": (0, 1024, True, False),
    "pim_num": (0, 2 ** 16, True, False),
    "num_sub_batches": (2, 1024, True, False),
    "seed": (0, 2 ** 63 - 1, True, False),
    "reuse_cache_size": (1, 10 ** 8, True, False),
    "expert_skew": (0.0, 8.0, False, False),
}
NO_FLAG = {"activation_reserve"}  # MemoryConfig only


def numeric_fields():
    """(class, field) of every int / float field of the four config classes."""
    for cls in (SchedulerConfig, MemoryConfig, SystemConfig, SimConfig):
        for f in dataclasses.fields(cls):
            if f.type in ("int", "float", "int | None", "float | None"):
                yield cls, f


def owner_of(name: str) -> str:
    if name in NO_FLAG:
        return "MemoryConfig"
    return CLASSES[FLAG_FIELDS[name][0]].__name__


def make(name: str, value):
    """Build a config with one numeric setting, through the flags where it has one."""
    if name in NO_FLAG:
        return MemoryConfig(**{name: value})
    if value is None:  # from_flags reads None as "the default": build the section itself
        section, field = FLAG_FIELDS[name]
        return CLASSES[section](**{field: None})
    extra = {}
    if name == "npu_group" and isinstance(value, int) and not isinstance(value, bool) \
            and 1 <= value <= 2 ** 16:
        extra["npu_num"] = value  # must divide npu_num
    if name == "pim_num":
        extra["pim_type"] = "pool"
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 2 ** 16:
            extra["npu_num"] = value
    if name == "max_num_batched_tokens":  # no effect (a warning) without a token budget
        extra["scheduling"] = "chunked"
    if name in ("long_prefill_token_threshold", "kv_offload_gib"):  # vllm-v1's (else an error)
        extra["scheduling"] = "vllm-v1"
    if name in ("device_price_per_hour", "carbon_g_per_kwh"):  # price the power model
        extra["power"] = True
    if name == "expert_skew":  # no effect (an error) without skewed routing
        extra["expert_routing"] = "skewed"
    if name in ("pim_channels", "num_sub_batches"):  # no effect (an error) without them
        extra["pim_type"] = "local"
        if name == "num_sub_batches":
            extra["sub_batch"] = True
    return F(**{name: value}, **extra)


# ------------------------------------------------------------------- the ranges
def test_every_numeric_field_documents_its_range():
    seen = set()
    for cls, f in numeric_fields():
        name = f.metadata.get("flag") or f.name
        seen.add(name)
        assert name in RANGES, f"{cls.__name__}.{f.name} has no range in this test"
        lo, hi, integer, positive = RANGES[name]
        assert f.metadata["range"] == (lo, hi), name
        assert f.metadata["integer"] is integer and f.metadata["positive"] is positive, name
        assert f.metadata["range_note"], name
        default = f.default
        assert default is None or lo <= default <= hi, name
    assert seen == set(RANGES)


@pytest.mark.parametrize("flags", [
    # values the tests, benchmarks, tutorials and reference runs use stay valid
    dict(npu_mem=0.07), dict(npu_mem=100), dict(npu_mem=16384), dict(npu_mem=0.001),
    dict(npu_num=64, npu_group=16), dict(npu_num=65536), dict(max_model_len=200_000),
    dict(max_model_len=2 ** 24), dict(block_size=1), dict(block_size=2 ** 16),
    dict(max_batch=256), dict(max_num_batched_tokens=2 ** 24, scheduling="chunked"),
    dict(batch_delay=86400),
    dict(gpu_memory_utilization=1), dict(gpu_memory_utilization=0.01),
    dict(num_kv_blocks=123), dict(pim_channels=1024, pim_type="local"), dict(reuse_cache_size=3),
    dict(reuse_cache_size=10 ** 8), dict(seed=2 ** 63 - 1),
    dict(num_sub_batches=1024, pim_type="local", sub_batch=True),
])
def test_values_in_range_are_accepted(flags):
    config = F(**flags)
    assert F(**config.to_flags()) == config == SimConfig.from_json(config.to_json())


# ------------------------------------------------------------------- door 1: flags
def _shown(value) -> str:
    return repr(value)


def flag_cases():
    """(id, name, value, regex) for every numeric setting and every kind of bad value.

    Every message leads with the setting as the user writes it: ``FLAG=VALUE``.
    """
    cases = []
    for name, (lo, hi, integer, positive) in RANGES.items():
        allowed = rf"; allowed {re.escape(str(lo) if integer else f'{lo:g}')} \.\. "
        if integer:
            bad = [("below min", lo - 1, rf"={lo - 1} is out of range \(must be >= {lo}\)"
                                         rf"{allowed}"),
                   ("above max", hi + 1, rf"={hi + 1} is out of range \(must be <= {hi}\)"
                                         rf"{allowed}"),
                   ("NaN", math.nan, rf"=nan must be an integer{allowed}"),
                   ("inf", math.inf, rf"=inf must be an integer{allowed}"),
                   ("whole float", float(lo + 2),
                    rf"={float(lo + 2)!r} must be an integer \(a float; integers "
                    rf"are never truncated\){allowed}"),
                   ("fraction", lo + 2.5, rf"={lo + 2.5!r} must be an integer{allowed}"),
                   ("bool", True, rf"=True must be an integer{allowed}"),
                   ("string", "16", r"='16' must be an integer \(text"),
                   ("huge", 10 ** 400, rf"=~1e\+400 \(an integer of \d+ bits\) is out of range "
                                       rf"\(must be <= {hi}\)"),
                   ("None", None, rf"=None must be an integer{allowed}")]
            if name in ("max_model_len", "num_kv_blocks"):
                bad = bad[:-1]  # None is allowed: the default
        else:
            below = [("zero", 0.0, r"=0\.0 is out of range \(must be > 0\.0\)"),
                     ("negative", -1.0, r"=-1\.0 is out of range \(must be > 0\.0\)"),
                     ("below min", lo / 2, rf"={re.escape(repr(lo / 2))} is out of range "
                                           rf"\(must be >= {re.escape(f'{lo:g}')}\){allowed}")
                     ] if positive \
                else [("below min", -1.0, rf"=-1\.0 is out of range \(must be >= {lo:g}\)"
                                          rf"{allowed}")]
            bad = below + [
                ("above max", hi * 2, rf"={re.escape(repr(hi * 2))} is out of range "
                                      rf"\(must be <= {re.escape(f'{hi:g}')}\){allowed}"),
                ("NaN", math.nan, rf"=nan must be a finite number{allowed}"),
                ("inf", math.inf, rf"=inf must be a finite number{allowed}"),
                ("-inf", -math.inf, r"=-inf must be a finite number"),
                ("bool", False, r"=False must be a finite number"),
                ("string", "0.5", r"='0\.5' must be a finite number \(text, not a number"),
                ("string 1e-3", "1e-3", r"='1e-3' must be a finite number \(text, not a "
                                        r"number; write a plain decimal number"),
                ("huge int", 10 ** 400, rf"=~1e\+400 \(an integer of \d+ bits\) is out of "
                                        rf"range \(must be <= {re.escape(f'{hi:g}')}\)"),
                ("list", [1.0], r"=\[1\.0\] must be a finite number")]
        for label, value, pattern in bad:
            cases.append((f"{name} {label}", name, value, "^" + re.escape(name) + pattern))
    return cases


FLAG_CASES = flag_cases()


@pytest.mark.parametrize("case,name,value,pattern", FLAG_CASES, ids=[c[0] for c in FLAG_CASES])
def test_numeric_settings_refuse(case, name, value, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        make(name, value)
    assert "\n" not in str(info.value)


# exact messages, where simple
EXACT = [
    (dict(npu_mem=1e300), "npu_mem=1e+300 is out of range (must be <= 16384); allowed 0.001 .. "
                          "16384 GiB (memory of one device; None = the preset's)"),
    (dict(npu_num=4.0), "npu_num=4.0 must be an integer (a float; integers are never "
                        "truncated); allowed 1 .. 65536 (NPUs in one system)"),
    (dict(npu_num=10 ** 12), "npu_num=1000000000000 is out of range (must be <= 65536); "
                             "allowed 1 .. 65536 (NPUs in one system)"),
    (dict(max_num_batched_tokens=10 ** 20),
     "max_num_batched_tokens=100000000000000000000 is out of range (must be <= 16777216); "
     "allowed 1 .. 16777216 tokens (tokens per iteration)"),
    (dict(pim_channels=10 ** 9), "pim_channels=1000000000 is out of range (must be <= 1024); "
                                 "allowed 0 .. 1024 (channels per PIM device; 0 = the preset's)"),
    (dict(batch_delay=1e300), "batch_delay=1e+300 is out of range (must be <= 86400); "
                              "allowed 0 .. 86400 s (up to one day)"),
    (dict(seed=2 ** 63), "seed=9223372036854775808 is out of range (must be <= "
                         "9223372036854775807); allowed 0 .. 9223372036854775807 (an int64)"),
    (dict(gpu_memory_utilization=0.0),
     "gpu_memory_utilization=0.0 is out of range (must be > 0.0); allowed 0.01 .. 1 "
     "(fraction of device memory; None = use activation_reserve)"),
    (dict(scheduling="chunkd"),
     "scheduling='chunkd' is not one of ['auto', 'orca', 'vllm', 'chunked', 'vllm-v1']; did you mean 'chunked'?"),
    (dict(config=3), "config must be the path of a YAML file of flags, got 3"),
]


@pytest.mark.parametrize("flags,message", EXACT, ids=[str(f) for f, _ in EXACT])
def test_exact_messages(flags, message):
    with pytest.raises(ValueError) as info:
        F(**flags)
    assert str(info.value) == message


def test_yaml_floats_for_ints_are_refused_not_truncated(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("npu_num: 4.0\n")
    with pytest.raises(ValueError, match=r"^npu_num=4\.0 must be an integer \(a float"):
        F(config=str(path))
    path.write_text("batch_delay: 1e-3\n")  # a plain decimal: read as 0.001 (PyYAML's
    assert F(config=str(path)).scheduler.batch_delay == 0.001  # YAML 1.1 made it text)
    for text, shown in (("max_batch: 0x10", "'0x10'"), ("max_batch: 1_000", "'1_000'"),
                        ("batch_delay: 1:30", "'1:30'")):  # never read as 16, 1000, 90
        path.write_text(text + "\n")
        with pytest.raises(ValueError, match=rf"={shown} must be a"):
            F(config=str(path))
    path.write_text("npu_num: 2\nnpu_num: 4\n")
    with pytest.raises(ValueError, match=r"key 'npu_num' appears more than once \(again at "
                                         r"line 2\)"):
        F(config=str(path))
    path.write_text("1: 2\nfoo: 3\n")  # keys of mixed types are still listed
    with pytest.raises(ValueError, match=r"unknown key\(s\) \[1, 'foo'\]"):
        F(config=str(path))


def run_main(argv):
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own errors
        return exc.code


@pytest.fixture
def no_simulation(monkeypatch):
    """Fail the test if anything is simulated."""
    from llmsim_nb.instance.simulator import Simulator

    def refuse(*args, **kwargs):
        raise AssertionError("simulated although the input is bad")

    monkeypatch.setattr(Simulator, "run", refuse)


def unwritable_folder(tmp: Path) -> Path:
    """A folder no file can be created in (a read-only one; /sys when running as root)."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        if not os.path.isdir("/sys") or os.access("/sys", os.W_OK) and _can_create("/sys"):
            pytest.skip("no unwritable folder for root here")
        return Path("/sys")
    folder = tmp / "readonly"
    folder.mkdir()
    folder.chmod(0o500)
    return folder


def _can_create(folder: str) -> bool:
    try:
        path = os.path.join(folder, ".llmsim-test-probe")
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        os.unlink(path)
        return True
    except OSError:
        return False


def epoch_like_trace(tmp: Path) -> str:
    """A trace whose last request arrives 9e6 s (104 days) in: 18 million 0.5-s buckets."""
    path = tmp / "late.tsv"
    path.write_text("input_toks\toutput_toks\tarrival_time_ns\n8\t2\t0\n8\t2\t9000000000000000\n")
    return str(path)


# (id, argv built from a tmp folder, substring of the one stderr line)
CLI_CASES = [
    ("npu_mem huge", lambda t: ["run", "--npu_mem", "1e300"],
     "npu_mem=1e+300 is out of range (must be <= 16384); allowed 0.001 .. 16384 GiB"),
    ("npu_mem inf", lambda t: ["run", "--npu_mem", "inf"],
     "npu_mem=inf must be a finite number"),
    ("batch_delay nan", lambda t: ["run", "--batch_delay", "nan"],
     "batch_delay=nan must be a finite number"),
    ("npu_num 1e12", lambda t: ["run", "--npu_num", "1000000000000"],
     "npu_num=1000000000000 is out of range (must be <= 65536)"),
    ("npu_num float", lambda t: ["run", "--npu_num", "4.0"], "invalid int value: '4.0'"),
    ("pim_channels 1e9", lambda t: ["run", "--pim_channels", "1000000000"],
     "pim_channels=1000000000 is out of range (must be <= 1024)"),
    ("tokens 1e20", lambda t: ["run", "--max_num_batched_tokens", "100000000000000000000"],
     "is out of range (must be <= 16777216)"),
    ("seed 2**64", lambda t: ["run", "--seed", str(2 ** 64)],
     "seed=18446744073709551616 is out of range (must be <= 9223372036854775807)"),
    ("yaml float for int", lambda t: ["run", "--config", _write(t, "c.yaml", "block_size: 16.0\n")],
     "block_size=16.0 must be an integer (a float"),
    ("yaml huge", lambda t: ["run", "--config", _write(t, "c.yaml", "max_batch: 1.0e+300\n")],
     "max_batch=1e+300 must be an integer"),
    ("yaml reuse_cache_size", lambda t: ["run", "--config",
                                         _write(t, "c.yaml", "reuse_cache_size: 1000000000\n")],
     "reuse_cache_size=1000000000 is out of range (must be <= 100000000)"),
    # ------------------------------------------------------------ outputs
    ("output unwritable folder", lambda t: ["run", "--output", str(unwritable_folder(t) / "run")],
     "-throughput.tsv: folder "),
    ("output is a folder", lambda t: ["run", "--output", str(_mkdir(t / "x.nc").with_suffix(""))],
     "x.nc: it exists and is a folder"),
    ("output parent is a file", lambda t: ["run", "--output", _write(t, "f", "") + "/run"],
     "f is not a folder"),
    ("output empty", lambda t: ["run", "--output", ""], "output must be a file prefix"),
    ("output a folder name", lambda t: ["run", "--output", str(t) + "/"],
     "output must be a file prefix such as results/run1"),
    ("output name too long", lambda t: ["run", "--output", str(t / ("x" * 300))],
     "is longer than the"),
    # ------------------------------------------------------------ the throughput table
    ("late arrivals", lambda t: ["run", "--model_name", "gpt2", "--dataset", epoch_like_trace(t),
                                 "--output", str(t / "late")],
     "throughput over time: simulated time 0 .. 9e+06 s in 0.5 s intervals needs 1.8e+07 "
     "buckets, above the limit of 10,000,000; shift the trace's arrivals to start near 0"),
]


def _write(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path


@pytest.mark.parametrize("case,make_args,message", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_refuses_before_simulating(case, make_args, message, tmp_path, capsys,
                                       no_simulation):
    argv = make_args(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    code = run_main(argv)
    captured = capsys.readouterr()
    assert code == 2, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("llmsim: error: ") and message in lines[0], lines[0]
    assert "Traceback" not in captured.err
    assert sorted(tmp_path.rglob("*")) == before  # nothing written, no folder made


# ------------------------------------------------------------------- door 2: JSON
def _json(change) -> str:
    data = SimConfig().to_dict()
    change(data)
    return json.dumps(data)


JSON_CASES = [
    ("missing key", lambda d: d.pop("seed"),
     r"^SimConfig JSON is missing key\(s\) \['seed'\]; expected the SimConfig keys \['model', "),
    ("extra key", lambda d: d.update(npus=4),
     r"^SimConfig JSON has unknown key\(s\) \['npus'\]; expected the SimConfig keys \['model'"),
    ("section missing key", lambda d: d["scheduler"].pop("block_size"),
     r"^SimConfig JSON 'scheduler' is missing key\(s\) \['block_size'\]; expected the "
     r"SchedulerConfig keys \['policy', "),
    ("section extra key", lambda d: d["system"].update(npu_count=2),
     r"^SimConfig JSON 'system' has unknown key\(s\) \['npu_count'\]; expected the "
     r"SystemConfig keys"),
    ("section not an object", lambda d: d.update(memory=3),
     r"^SimConfig JSON 'memory' must be an object with the MemoryConfig keys \['npu_mem', .*\], "
     r"got a number \(3\)"),
    ("section null", lambda d: d.update(scheduler=None),
     r"SimConfig JSON 'scheduler' must be an object .* got null"),
    ("value of wrong type", lambda d: d.update(seed="0"),
     r"^seed='0' must be an integer \(text"),
    ("float for int", lambda d: d["system"].update(npu_num=4.0),
     r"^npu_num=4\.0 must be an integer \(a float"),
    ("out of range", lambda d: d["memory"].update(npu_mem=1e300),
     r"^npu_mem=1e\+300 is out of range \(must be <= 16384\)"),
    ("choice of wrong type", lambda d: d["scheduler"].update(policy=["orca"]),
     r"^scheduling=\['orca'\] is not one of \['auto', 'orca', 'vllm', 'chunked', 'vllm-v1'\]$"),
]


@pytest.mark.parametrize("case,change,pattern", JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_from_json_refuses(case, change, pattern):
    with pytest.raises(ValueError, match=pattern):
        SimConfig.from_json(_json(change))


@pytest.mark.parametrize("text,pattern", [
    ("[1, 2]", r"^SimConfig JSON must be an object with the SimConfig keys .* got an array"),
    ("{", r"^SimConfig JSON is not valid JSON: Expecting property name"),
    ("", r"^SimConfig JSON is not valid JSON"),
    ("null", r"^SimConfig JSON must be an object .* got null"),
    (b"\xff", r"^SimConfig JSON is not valid JSON"),
    ("1" * 5000, r"^SimConfig JSON is not valid JSON"),
    (3, r"^SimConfig\.from_json needs a JSON string, got int"),
])
def test_from_json_refuses_what_is_not_a_config_object(text, pattern):
    with pytest.raises(ValueError, match=pattern):
        SimConfig.from_json(text)


# ------------------------------------------------------------------- door 3: outputs
@pytest.fixture(scope="module")
def small_run():
    from llmsim_nb import Simulator
    from llmsim_nb.workload import Trace

    return Simulator(F(model_name="gpt2"), Trace([0.0, 0.3], [8, 16], [4, 2])).run()


OUTPUT_CASES = [
    ("unwritable folder", lambda t: unwritable_folder(t) / "run",
     r"cannot write output .*run-throughput\.tsv: folder .* is not writable"),
    ("throughput path is a folder", lambda t: _mkdir(t / "a-throughput.tsv").parent / "a",
     r"cannot write output .*a-throughput\.tsv: it exists and is a folder"),
    ("netCDF path is a folder", lambda t: _mkdir(t / "b.nc").parent / "b",
     r"cannot write output .*b\.nc: it exists and is a folder"),
    ("requests path is a folder", lambda t: _mkdir(t / "c-requests.csv").parent / "c",
     r"cannot write output .*c-requests\.csv: it exists and is a folder"),
    ("parent is a file", lambda t: Path(_write(t, "plain", "")) / "sub" / "run",
     r"cannot write output .*plain/sub/run-throughput\.tsv: .*plain is not a folder"),
    ("not a regular file", lambda t: _fifo(t / "d-throughput.tsv").parent / "d",
     r"cannot write output .*d-throughput\.tsv: it exists and is not a regular file"),
    ("prefix ends in a slash", lambda t: str(t) + "/",
     r"output must be a file prefix such as results/run1 .* got '.*/'"),
    ("prefix empty", lambda t: "", r"output must be a file prefix .* got ''"),
    ("prefix not a path", lambda t: 3, r"output must be a file prefix .* got 3"),
    ("name too long", lambda t: t / ("y" * 300),
     r"cannot write output .*: the name 'yyyy.*'\.\.\. is longer than the \d+ bytes"),
    ("missing folder name too long", lambda t: t / ("z" * 300) / "run",
     r"cannot write output .*: the name 'zzzz.*'\.\.\. is longer than"),
]


def _fifo(path: Path) -> Path:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("case,make_prefix,pattern", OUTPUT_CASES,
                         ids=[c[0] for c in OUTPUT_CASES])
def test_outputs_are_checked_before_writing(case, make_prefix, pattern, tmp_path, small_run):
    prefix = make_prefix(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(ValueError, match=pattern) as info:
        check_output_prefix(prefix)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=pattern):
        write_outputs(small_run, prefix)
    assert sorted(tmp_path.rglob("*")) == before  # nothing created, not even a folder


def test_outputs_create_missing_folders_and_use_the_umask(tmp_path, small_run):
    old = os.umask(0o022)
    try:
        paths = write_outputs(small_run, tmp_path / "new" / "deeper" / "run")
    finally:
        os.umask(old)
    assert [p.name for p in paths] == ["run-throughput.tsv", "run-simulation-time.tsv",
                                       "run-requests.csv", "run.nc"]
    assert sorted(p.name for p in (tmp_path / "new" / "deeper").iterdir()) == sorted(
        p.name for p in paths)  # no temporary file left
    for p in paths:
        assert p.stat().st_mode & 0o777 == 0o644
    assert xr.load_dataset(paths[3]).sizes["request"] == 2


def test_a_failed_write_changes_no_file_and_leaves_no_temporary(tmp_path, small_run,
                                                                monkeypatch):
    prefix = tmp_path / "run"
    old = {}
    for suffix in files.OUTPUT_SUFFIXES:
        path = Path(str(prefix) + suffix)
        path.write_text("old " + suffix)
        old[path] = path.read_text()

    def disk_full(self, path, *args, **kwargs):
        Path(path).write_text("partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", disk_full)
    with pytest.raises(OSError, match=r"cannot write output .*run\.nc: No space left on device"):
        write_outputs(small_run, prefix)
    assert {p: p.read_text() for p in old} == old
    assert sorted(tmp_path.iterdir()) == sorted(old)


def test_outputs_write_through_a_symbolic_link(tmp_path, small_run):
    real = tmp_path / "real"
    real.mkdir()
    (real / "x-throughput.tsv").write_text("old")
    (tmp_path / "x-throughput.tsv").symlink_to(real / "x-throughput.tsv")
    write_outputs(small_run, tmp_path / "x")
    assert (tmp_path / "x-throughput.tsv").is_symlink()
    assert (real / "x-throughput.tsv").read_text().startswith("time_duration\t")


def test_single_file_writers_are_checked_too(tmp_path, small_run):
    _mkdir(tmp_path / "t.tsv")
    with pytest.raises(ValueError, match=r"t\.tsv: it exists and is a folder"):
        files.write_throughput_tsv(small_run, tmp_path / "t.tsv")
    path = files.write_requests_csv(small_run, tmp_path / "r.csv")
    assert path.read_text().startswith("request_id,")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "t.tsv"]


# ------------------------------------------------------------------- door 4: table sizes
def _iterations(t_end) -> xr.Dataset:
    t_end = np.asarray(t_end, dtype=float)
    return xr.Dataset({"t_end": ("iteration", t_end),
                       "num_prefill_tokens": ("iteration", np.ones(len(t_end))),
                       "num_decode_tokens": ("iteration", np.ones(len(t_end)))})


BUCKET_CASES = [
    ("epoch seconds", 1.7e9, 0.5,
     "throughput over time: simulated time 0 .. 1.7e+09 s in 0.5 s intervals needs 3.4e+09 "
     "buckets, above the limit of 10,000,000; shift the trace's arrivals to start near 0 (are "
     "they Unix-epoch times?) or use a larger interval"),
    ("epoch nanoseconds as seconds", 1.7e18, 0.5, "0 .. 1.7e+18 s in 0.5 s intervals needs "
                                                  "3.4e+18 buckets"),
    ("just above the limit", 0.5 * MAX_THROUGHPUT_BUCKETS + 0.5, 0.5, "needs 1e+07 buckets"),
    ("tiny interval", 100.0, 1e-9, "0 .. 100 s in 1e-09 s intervals needs 1e+11 buckets"),
    ("infinite time", math.inf, 0.5, "needs an unbounded number of buckets"),
]


@pytest.mark.parametrize("case,span,interval,message", BUCKET_CASES,
                         ids=[c[0] for c in BUCKET_CASES])
def test_bucket_estimate_refuses_huge_tables(case, span, interval, message):
    with pytest.raises(ValueError) as info:
        check_throughput_buckets(span, interval)
    assert message in str(info.value)
    if math.isfinite(span):
        with pytest.raises(ValueError, match=re.escape(message)):
            throughput_over_time(_iterations([0.1, span]), interval)  # nothing allocated


def test_bucket_estimate_at_the_limit():
    assert check_throughput_buckets(0.5 * MAX_THROUGHPUT_BUCKETS) == MAX_THROUGHPUT_BUCKETS
    assert check_throughput_buckets(0.0) == 1
    ends, prompt, _ = throughput_over_time(_iterations([0.25, 0.5, 0.75]))
    assert ends.tolist() == [0.5, 1.0] and prompt.tolist() == [4.0, 2.0]


@pytest.mark.parametrize("interval", [0, -0.5, math.nan, math.inf, True, "0.5"])
def test_bucket_interval_must_be_a_positive_number(interval):
    with pytest.raises(ValueError, match=r"interval must be a finite number > 0 s, got "):
        throughput_over_time(_iterations([1.0]), interval)


# ------------------------------------------------------------------- random values
ANY_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-2 ** 70, 2 ** 70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["orca", "vllm", "chunked", "max", "tensor", "pool", "local", "on", "off",
                     "gpt2", "heads", "ring", "detailed", "16", "1e3", "nan"]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(),
                                                         max_size=2),
    st.builds(float, st.integers(-10, 100)), st.integers(-3, 70))
FLAGS = sorted(FLAG_FIELDS) + ["output", "config"]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(st.sampled_from(FLAGS), ANY_VALUE, max_size=6))
def test_random_flags_build_a_config_or_raise_value_error(flags):
    try:
        config = F(**flags)
    except ValueError as exc:
        assert "\n" not in str(exc)
        return
    assert F(**config.to_flags()) == config
    assert SimConfig.from_json(config.to_json()) == config


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(sorted(RANGES)), st.data())
def test_random_values_in_range_are_accepted(name, data):
    lo, hi, integer, _ = RANGES[name]
    value = data.draw(st.integers(lo, hi) if integer else
                      st.floats(lo, hi, allow_nan=False, allow_infinity=False))
    config = make(name, value)
    if name in NO_FLAG:
        assert getattr(config, name) == value
    else:
        assert SimConfig.from_json(config.to_json()) == config
        assert config.to_flags()[name] == value


def _json_containers(inner):
    # A def, not a lambda: hypothesis reads a multi-line lambda's source wrongly and warns
    # (HypothesisDeprecationWarning) that it does not use its argument.
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)


JSON_VALUE = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() |
                          st.text(max_size=8), _json_containers, max_leaves=6)
_SECTIONS = {None: None, **{k: k for k in ("scheduler", "memory", "system")}}


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.sampled_from(sorted(_SECTIONS, key=str)), st.text(max_size=24),
                          JSON_VALUE, st.booleans()), max_size=4), st.data())
def test_random_json_builds_a_config_or_raises_value_error(edits, data):
    doc = SimConfig().to_dict()
    for section, key, value, use_real_key in edits:
        target = doc if section is None else doc.get(section)
        if not isinstance(target, dict):
            continue
        if use_real_key and target:
            key = data.draw(st.sampled_from(sorted(target)))
        if value is None and data.draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = value
    try:
        config = SimConfig.from_json(json.dumps(doc))
    except ValueError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(config, SimConfig)


def test_cli_process_refuses_with_one_line(tmp_path):
    import subprocess

    result = subprocess.run([sys.executable, "-m", "llmsim_nb.cli", "run", "--npu_mem",
                             "1e300", "--output", str(tmp_path / "x")], capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "llmsim: error: npu_mem=1e+300 is out of range (must be <= 16384); allowed 0.001 .. "
        "16384 GiB (memory of one device; None = the preset's)"]
    assert list(tmp_path.iterdir()) == []


def test_throughput_file_keeps_times_of_long_runs_distinct():
    """The -throughput.tsv times are exact decimals: past 100,000 s ``:g`` made them collide."""
    import numpy as np
    import xarray as xr

    from llmsim_nb.results.files import _throughput_text
    t_end = np.array([100000.25, 100000.75, 100001.25])
    ds = xr.Dataset({"t_end": ("iteration", t_end), "t_start": ("iteration", t_end - 0.1),
                     "num_prefill_tokens": ("iteration", [3, 0, 0]),
                     "num_decode_tokens": ("iteration", [0, 7, 1])})
    rows = [line.split("\t") for line in _throughput_text(ds).splitlines()[1:]]
    assert rows[-3:] == [["100000.5", "6", "0"], ["100001", "0", "14"], ["100001.5", "0", "2"]]
    assert len({r[0] for r in rows}) == len(rows)


def test_from_json_refuses_a_key_given_twice_and_deep_nesting():
    text = SimConfig().to_json()
    with pytest.raises(ValueError, match=r"key 'seed' appears more than once"):
        SimConfig.from_json(text[:-1] + ', "seed": 1}')
    with pytest.raises(ValueError, match=r"nests too deeply"):
        SimConfig.from_json("[" * 100_000)
