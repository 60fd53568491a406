"""SimConfig: one vocabulary for Python and the CLI, validated on construction."""

import dataclasses

import pytest

from llmsim_nb import SchedulerConfig, SimConfig
from llmsim_nb.config import MemoryConfig, SystemConfig


def test_defaults_are_the_papers_setup():
    c = SimConfig()
    assert c.model == "gpt3-6.7b" and c.hardware == "npu-128x128"
    # 'auto' is the original's orca on the paper's NPU (vllm-v1 on a GPU preset).
    assert c.scheduler.policy == "auto" and c.scheduler.kv_manage == "vllm"
    assert c.scheduler.resolve(gpu=False).policy == "orca"
    assert c.scheduler.resolve(gpu=True).policy == "vllm-v1"
    assert c.system.npu_num == 1 and c.system.pim_type == "none"


def test_from_flags_uses_the_cli_names_and_round_trips():
    c = SimConfig.from_flags(model_name="llama-7b", scheduling="chunked", max_batch=32,
                             batch_delay=0, npu_mem=40, block_size=32, kv_manage="max",
                             gen=True, max_num_batched_tokens=512, seed=7, fast_run=True)
    assert c.model == "llama-7b" and c.scheduler.policy == "chunked"
    assert c.memory.npu_mem == 40.0 and c.scheduler.gen and c.seed == 7
    assert SimConfig.from_flags(**c.to_flags()) == c
    assert SimConfig.from_json(c.to_json()) == c


def test_every_seed_parameter_is_a_flag():
    seed = {"model_name", "npu_num", "max_batch", "batch_delay", "scheduling", "parallel",
            "npu_group", "npu_mem", "kv_manage", "pim_type", "sub_batch", "dataset",
            "network", "output", "gen", "fast_run", "block_size"}
    assert seed <= set(SimConfig.flag_names())
    assert {"hardware", "max_num_batched_tokens", "seed", "config"} <= set(SimConfig.flag_names())


def test_every_field_has_help_and_units():
    for cls in (SimConfig, SchedulerConfig, MemoryConfig, SystemConfig):
        for f in dataclasses.fields(cls):
            if f.name in ("scheduler", "memory", "system"):
                continue
            assert f.metadata["help"] and f.metadata["units"], (cls.__name__, f.name)


def test_variants_with_replace_are_validated():
    c = SimConfig()
    d = dataclasses.replace(c, scheduler=dataclasses.replace(c.scheduler, max_batch=4))
    assert d.scheduler.max_batch == 4 and c.scheduler.max_batch == 0
    with pytest.raises(ValueError, match=r"max_batch=-1 is out of range \(must be >= 0\)"):
        dataclasses.replace(c.scheduler, max_batch=-1)


def test_yaml_config_and_override(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model_name: llama-7b\nmax_batch: 16\n")
    c = SimConfig.from_flags(config=str(path), max_batch=8)
    assert c.model == "llama-7b" and c.scheduler.max_batch == 8
    assert SimConfig.from_yaml(path).scheduler.max_batch == 16


@pytest.mark.parametrize("flags,message", [
    ({"bogus": 1}, "unknown flag"),
    ({"scheduling": "sjf"}, "is not one of"),
    ({"kv_manage": "lru"}, "kv_manage='lru'"),
    ({"parallel": "data"}, "parallel='data'"),
    ({"pim_type": "remote"}, "pim_type='remote'"),
    ({"max_batch": 1.5}, "max_batch=1.5 must be an integer"),
    ({"block_size": 0}, r"block_size=0 is out of range \(must be >= 1\)"),
    ({"batch_delay": -0.1}, r"batch_delay=-0.1 is out of range \(must be >= 0\)"),
    ({"batch_delay": float("nan")}, "batch_delay=nan must be a finite number"),
    ({"npu_num": 0}, r"npu_num=0 is out of range \(must be >= 1\)"),
    ({"npu_num": 8, "npu_group": 3}, "npu_group=3 must divide npu_num=8"),
    ({"npu_mem": 0}, r"npu_mem=0.0 is out of range \(must be > 0"),
    ({"sub_batch": True}, "needs pim_type"),
    ({"seed": -1}, r"seed=-1 is out of range \(must be >= 0\)"),
    ({"max_num_batched_tokens": 0}, r"max_num_batched_tokens=0 is out of range \(must be >= 1\)"),
    ({"gen": "yes"}, "gen='yes' must be a bool"),
    ({"model_name": ""}, "model_name='' must be a model name"),
])
def test_bad_flags_name_the_field_and_value(flags, message):
    with pytest.raises(ValueError, match=message):
        SimConfig.from_flags(**flags)


def test_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_name: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        SimConfig.from_flags(config=str(bad))
    bad.write_text("modell: gpt2\n")
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['modell'\]"):
        SimConfig.from_flags(config=str(bad))
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        SimConfig.from_flags(config=str(bad))
