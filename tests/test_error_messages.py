"""Error messages speak the user's language: flag names, suggestions, no silent no-ops.

- every configuration check leads with the setting as the user writes it
  (``scheduling='fifo' ...``, ``npu_mem=1e+300 ...``), keeping the value and
  what is allowed;
- an unknown choice, flag, YAML key, model, hardware, PIM or network preset
  suggests the closest names when one is close, and nothing otherwise (the
  value is never corrected);
- a flag that is given but can have no effect raises or warns
  (:func:`llmsim_nb.config.check_flag_effects`), and a flag at its default
  value never does;
- a tensor-parallel degree that does not divide the heads switches
  ``attention_placement='auto'`` to requests placement with a warning, and
  is an error with ``attention_placement='heads'``.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from pathlib import Path

import pytest

from llmsim_nb import SimConfig
from llmsim_nb.config import (ATTENTION_PLACEMENTS, COLLECTIVES, KV_MANAGE, NPU_MODES, PARALLEL,
                              PIM_MAPPINGS, PIM_TYPES, SCHEDULING_POLICIES, SUB_BATCH_CRITERIA,
                              ConfigWarning, MemoryConfig, SchedulerConfig, SystemConfig)
from llmsim_nb.config.fields import close_matches, did_you_mean, flag_of
from llmsim_nb.engines.hardware import get_hardware
from llmsim_nb.engines.pim import get_pim
from llmsim_nb.models import get_model
from llmsim_nb.network import load_topology
from llmsim_nb.parallel.layout import ParallelLayout
from llmsim_nb.system.builder import build_instance

F = SimConfig.from_flags


def no_config_warning(make):
    """``make()``, failing if it emits a ConfigWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)
        return make()


# ------------------------------------------------------------ the flag leads the message
FLAG_MESSAGES = [
    (dict(scheduling="fifo"),
     r"^scheduling='fifo' is not one of \['auto', 'orca', 'vllm', 'chunked', 'vllm-v1'\]$"),
    (dict(npu_mem=1e300), r"^npu_mem=1e\+300 is out of range \(must be <= 16384\); allowed "
                          r"0\.001 \.\. 16384 GiB \(memory of one device; None = the preset's\)$"),
    (dict(npu_num=0), r"^npu_num=0 is out of range \(must be >= 1\); allowed 1 \.\. 65536"),
    (dict(npu_num=4.0), r"^npu_num=4\.0 must be an integer \(a float; integers are never "
                        r"truncated\); allowed 1 \.\. 65536"),
    (dict(block_size="16"), r"^block_size='16' must be an integer \(text"),
    (dict(batch_delay=float("nan")), r"^batch_delay=nan must be a finite number; allowed 0 \.\. "),
    (dict(gpu_memory_utilization=0.0), r"^gpu_memory_utilization=0\.0 is out of range "
                                       r"\(must be > 0\.0\); allowed 0\.01 \.\. 1"),
    (dict(max_num_batched_tokens=0), r"^max_num_batched_tokens=0 is out of range "
                                     r"\(must be >= 1\)"),
    (dict(seed=-1), r"^seed=-1 is out of range \(must be >= 0\)"),
    (dict(gen="yes"), r"^gen='yes' must be a bool$"),
    (dict(congestion=1), r"^congestion=1 must be a bool$"),
    (dict(model_name=""), r"^model_name='' must be a model name$"),
    (dict(hardware=3), r"^hardware=3 must be a hardware preset name$"),
    (dict(network=""), r"^network='' must be a file path or preset name$"),
    (dict(npu_num=8, npu_group=3), r"^npu_group=3 must divide npu_num=8$"),
    (dict(pim_num=2), r"^pim_num=2 sizes a PIM pool; it needs pim_type='pool', got "
                      r"pim_type='none'$"),
    (dict(sub_batch=True), r"^sub_batch=True needs pim_type 'local' or 'pool'"),
    (dict(reuse="maybe"), r"^reuse='maybe' is not one of \['on', 'off'\]$"),
]


@pytest.mark.parametrize("flags,pattern", FLAG_MESSAGES, ids=[str(f) for f, _ in FLAG_MESSAGES])
def test_messages_lead_with_the_flag(flags, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        F(**flags)
    assert "\n" not in str(info.value)
    assert "Config." not in str(info.value)  # no class-qualified field names


CHOICES = {"policy": SCHEDULING_POLICIES, "kv_manage": KV_MANAGE, "parallel": PARALLEL,
           "pim_type": PIM_TYPES, "pim_mapping": PIM_MAPPINGS,
           "attention_placement": ATTENTION_PLACEMENTS, "collective": COLLECTIVES,
           "npu_mode": NPU_MODES, "sub_batch_criterion": SUB_BATCH_CRITERIA}


def _fields():
    for cls in (SchedulerConfig, MemoryConfig, SystemConfig, SimConfig):
        for f in dataclasses.fields(cls):
            yield cls, f


def _make(cls, name, value):
    if cls is SimConfig:
        return SimConfig(**{name: value})
    return cls(**{name: value})


@pytest.mark.parametrize("cls,field", [(c, f) for c, f in _fields() if f.name in CHOICES],
                         ids=lambda x: getattr(x, "name", getattr(x, "__name__", "")))
def test_every_choice_names_its_flag_and_suggests_the_closest(cls, field):
    flag = field.metadata["flag"]
    allowed = CHOICES[field.name]
    typo = allowed[-1][:-1]  # the last choice without its last letter: always close
    with pytest.raises(ValueError) as info:
        _make(cls, field.name, typo)
    message = str(info.value)
    assert message.startswith(f"{flag}={typo!r} is not one of {list(allowed)}"), message
    assert message.endswith("?") and repr(allowed[-1]) in message.split("did you mean")[1]


@pytest.mark.parametrize("cls,field", [(c, f) for c, f in _fields() if "range" in f.metadata],
                         ids=lambda x: getattr(x, "name", getattr(x, "__name__", "")))
def test_every_numeric_setting_names_its_flag_or_field(cls, field):
    lo, hi = field.metadata["range"]
    with pytest.raises(ValueError) as info:
        _make(cls, field.name, hi * 10 if hi else 10)
    assert str(info.value).startswith(f"{flag_of(field)}={hi * 10 if hi else 10!r}"), info.value
    assert "allowed" in str(info.value)


# ------------------------------------------------------------ did you mean
SUGGESTIONS = [
    (lambda: F(scheduling="chunkd"), r"^scheduling='chunkd' is not one of \['auto', 'orca', "
                                     r"'vllm', 'chunked', 'vllm-v1'\]; did you mean 'chunked'\?$"),
    (lambda: F(scheduling="ORCA"), r"; did you mean 'orca'\?$"),
    (lambda: F(kv_manage="vlm"), r"^kv_manage='vlm' is not one of .*; did you mean 'vllm'\?$"),
    (lambda: F(parallel="tensr"), r"; did you mean 'tensor'\?$"),
    (lambda: F(pim_type="locl"), r"; did you mean 'local'\?$"),
    (lambda: F(pim_mapping="atention"), r"; did you mean 'attention' or 'decode-attention'\?$"),
    (lambda: F(attention_placement="head"), r"; did you mean 'heads'\?$"),
    (lambda: F(collective="rign"), r"; did you mean 'ring'\?$"),
    (lambda: F(npu_mode="detail"), r"; did you mean 'detailed'\?$"),
    (lambda: F(sub_batch_criterion="mem"), r"; did you mean 'memory'\?$"),
    (lambda: F(reuse="of"), r"^reuse='of' is not one of \['on', 'off'\]; did you mean 'off'\?$"),
    (lambda: F(schedulng="orca"), r"^unknown flag\(s\) \['schedulng'\]; known flags: \[.*\]; "
                                  r"did you mean 'scheduling' or 'scheduling_policy'\?$"),
    (lambda: F(schedulng="orca", npu_nun=2), r"; did you mean 'npu_num'.* \(for 'npu_nun'\), "
                                              r"'scheduling' or 'scheduling_policy' \(for "
                                              r"'schedulng'\)\?$"),
    (lambda: get_model("llama-7"), r"^model name 'llama-7' is not in the catalog \(did you mean "
                                   r"'llama-7b'.*\?\); known models: "),
    (lambda: get_hardware("a100-80g"), r"^hardware='a100-80g' is not a known preset; known "
                                       r"presets: \[.*\]; did you mean 'a100-80gb'"),
    (lambda: get_hardware("h100"), r"; did you mean 'h100-sxm'"),
    (lambda: get_pim("neupims-hbm"), r"^pim_hardware='neupims-hbm' is not a known PIM preset; "
                                     r"known: \[.*\]; did you mean 'neupims-hbm2'\?$"),
    (lambda: load_topology("gpu_n8"), r"^network='gpu_n8' is neither a known preset nor a "
                                      r"file; known presets: \[.*\]; did you mean 'gpu_n4'"),
    (lambda: load_topology("neupims_(4,3).json"), r"; did you mean 'neupims_\(4,"),
]


@pytest.mark.parametrize("make,pattern", SUGGESTIONS, ids=range(len(SUGGESTIONS)))
def test_close_names_are_suggested(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


NOTHING_CLOSE = [
    lambda: F(scheduling="fifo"),
    lambda: F(scheduling=["orca"]),  # not a string: nothing to compare
    lambda: F(collective="tree"),
    lambda: F(zzzz=1),
    lambda: get_model("xyz"),
    lambda: get_hardware("tpu-v9"),
    lambda: get_pim("hbm9"),
    lambda: load_topology("torus_9d"),
]


@pytest.mark.parametrize("make", NOTHING_CLOSE, ids=range(len(NOTHING_CLOSE)))
def test_nothing_is_suggested_when_nothing_is_close(make):
    with pytest.raises(ValueError) as info:
        make()
    assert "did you mean" not in str(info.value)


def test_a_close_name_is_never_taken_for_the_user():
    with pytest.raises(ValueError):
        F(scheduling="chunkd")
    with pytest.raises(ValueError, match="did you mean 'llama-7b'"):
        build_instance(F(model_name="llama-7"))


def test_yaml_unknown_keys_are_suggested(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model_nme: gpt2\nschedulig: chunked\n")
    with pytest.raises(ValueError, match=r"has unknown key\(s\) \['model_nme', 'schedulig'\]; "
                                         r"known: \[.*\]; did you mean 'model_name'.* \(for "
                                         r"'model_nme'\), 'scheduling' or 'scheduling_policy' "
                                         r"\(for 'schedulig'\)\?$"):
        F(config=str(path))
    path.write_text("1: 2\n")  # a key that is not text has no suggestion
    with pytest.raises(ValueError) as info:
        F(config=str(path))
    assert "did you mean" not in str(info.value)


def test_json_unknown_keys_are_suggested():
    import json

    data = SimConfig().to_dict()
    data["system"]["npu_nums"] = 2
    with pytest.raises(ValueError, match=r"^SimConfig JSON 'system' has unknown key\(s\) "
                                         r"\['npu_nums'\]; .*; did you mean 'npu_num'"):
        SimConfig.from_json(json.dumps(data))


def test_close_matches_helpers():
    assert close_matches("chunkd", SCHEDULING_POLICIES) == ["chunked"]
    assert close_matches("fifo", SCHEDULING_POLICIES) == []
    assert close_matches("chunked", SCHEDULING_POLICIES) == []  # the name itself is no hint
    assert close_matches(3, ["3"]) == [] and close_matches("", ["a"]) == []
    assert close_matches("H100", ["h100-sxm", "h200"])[0] == "h100-sxm"  # prefixes first
    assert did_you_mean("rign", COLLECTIVES) == "; did you mean 'ring'?"
    assert did_you_mean("xyzzy", COLLECTIVES) == ""


# ------------------------------------------------------------ flags that change nothing
NO_EFFECT_ERRORS = [
    (dict(pim_channels=4), r"^pim_channels=4 has no effect with pim_type='none' \(no PIM is "
                           r"simulated\); set pim_type 'local' or 'pool', or drop it$"),
    (dict(pim_mapping="attention", pim_hardware="newton-hbm2"),
     r"^pim_hardware='newton-hbm2', pim_mapping='attention' have no effect with "
     r"pim_type='none'"),
    (dict(pim_type="local", num_sub_batches=4),
     r"^num_sub_batches=4 has no effect without sub_batch=True"),
    (dict(pim_type="local", sub_batch_criterion="compute"),
     r"^sub_batch_criterion='compute' has no effect without sub_batch=True"),
    (dict(reuse="off", reuse_cache_size=10),
     r"^reuse_cache_size=10 has no effect with reuse=off \(no operator timing is cached\)"),
    (dict(pim_type="local", num_kv_blocks=100),
     r"^num_kv_blocks=100 has no effect with pim_type='local': the KV cache lives in the PIM "
     r"devices"),
    (dict(pim_channels=4, num_sub_batches=3),  # every problem, on one line
     r"^pim_channels=4 has no effect .*; num_sub_batches=3 has no effect without sub_batch"),
]


@pytest.mark.parametrize("flags,pattern", NO_EFFECT_ERRORS,
                         ids=[str(f) for f, _ in NO_EFFECT_ERRORS])
def test_flags_that_can_change_nothing_are_refused(flags, pattern, tmp_path):
    with pytest.raises(ValueError, match=pattern) as info:
        F(**flags)
    assert "\n" not in str(info.value)
    path = tmp_path / "c.yaml"  # a YAML file's keys are given flags too
    path.write_text("".join(f"{k}: {v}\n" for k, v in flags.items()))
    with pytest.raises(ValueError, match=pattern):
        F(config=str(path))


NO_EFFECT_WARNINGS = [
    (dict(max_num_batched_tokens=512),
     r"^max_num_batched_tokens=512 has no effect: scheduling='orca' has no token budget "
     r"\(only 'chunked' and 'vllm-v1' have one\), and without gpu_memory_utilization no "
     r"activation memory is sized from it; it is ignored$"),
    (dict(scheduling="vllm", max_num_batched_tokens=4096),
     r"^max_num_batched_tokens=4096 has no effect: scheduling='vllm'"),
    (dict(collective="ring"), r"^collective='ring' has no effect with a tensor-parallel degree "
                              r"of 1 \(npu_num=1, npu_group=1, parallel='hybrid'\)"),
    (dict(npu_num=4, parallel="pipeline", collective="direct"),
     r"^collective='direct' has no effect with a tensor-parallel degree of 1 \(npu_num=4, "
     r"npu_group=1, parallel='pipeline'\)"),
    (dict(attention_placement="requests"),
     r"^attention_placement='requests' has no effect with a tensor-parallel degree of 1"),
    (dict(congestion=True), r"^congestion=True has no effect on one NPU \(npu_num=1\) without "
                            r"a PIM pool"),
    (dict(num_kv_blocks=500, gpu_memory_utilization=0.9),
     r"^gpu_memory_utilization=0\.9 has no effect with num_kv_blocks=500, which sets the KV "
     r"cache's size"),
]


@pytest.mark.parametrize("flags,pattern", NO_EFFECT_WARNINGS,
                         ids=[str(f) for f, _ in NO_EFFECT_WARNINGS])
def test_flags_moot_in_their_setup_are_warned_about(flags, pattern):
    with pytest.warns(ConfigWarning, match=pattern) as record:
        config = F(**flags)
    assert all(issubclass(w.category, UserWarning) for w in record)
    assert all(w.filename == __file__ for w in record if w.category is ConfigWarning)
    # still built as asked: nothing is changed
    for flag, value in flags.items():
        shown = config.to_flags()[flag]
        assert shown == value or (flag == "reuse" and shown is (value == "on"))


EFFECTIVE = [
    dict(),
    dict(scheduling="chunked", max_num_batched_tokens=512),
    dict(scheduling="vllm", max_num_batched_tokens=4096, gpu_memory_utilization=0.9),
    dict(scheduling="vllm", max_num_batched_tokens=2048),  # the default value: asks nothing
    dict(pim_channels=0, pim_hardware="neupims-hbm2", num_sub_batches=2),  # defaults
    dict(pim_type="local", pim_channels=4, pim_mapping="attention"),
    dict(pim_type="local", sub_batch=True, num_sub_batches=4, sub_batch_criterion="compute"),
    dict(reuse="off"), dict(reuse_cache_size=10),
    dict(npu_num=2, parallel="tensor", collective="ring", congestion=True),
    dict(npu_num=4, npu_group=2, attention_placement="requests"),
    dict(npu_num=2, npu_group=2, congestion=True),
    dict(npu_num=1, pim_type="pool", congestion=True),
    dict(num_kv_blocks=500), dict(gpu_memory_utilization=0.9),
    dict(micro_batches=2), dict(kv_manage="max", block_size=32),
]


@pytest.mark.parametrize("flags", EFFECTIVE, ids=[str(f) for f in EFFECTIVE])
def test_flags_with_an_effect_are_neither_refused_nor_warned_about(flags):
    config = no_config_warning(lambda: F(**flags))
    no_config_warning(lambda: F(**config.to_flags()))  # a round trip passes every flag


def test_round_trips_report_only_what_the_config_sets():
    # every flag at its default (what sweeps and the dashboard pass): nothing to report
    no_config_warning(lambda: F(**SimConfig().to_flags()))
    config = no_config_warning(lambda: F(scheduling="chunked", max_num_batched_tokens=512))
    with pytest.warns(ConfigWarning, match="max_num_batched_tokens=512 has no effect"):
        F(**{**config.to_flags(), "scheduling": "orca"})


# ------------------------------------------------------------ tensor parallelism vs heads
def test_tp_not_dividing_the_heads_switches_auto_to_requests_with_a_warning():
    with pytest.warns(UserWarning, match=r"^attention_placement='auto' with npu_num=5, "
                                         r"npu_group=1, parallel='hybrid': tensor parallelism 5 "
                                         r"does not divide the 12 attention heads of 'gpt2', so "
                                         r"attention switches from heads to requests placement "
                                         r"\(Orca's selective batching"):
        parts = build_instance(F(model_name="gpt2", npu_num=5))
    assert parts.layout.attention == "requests" and parts.layout.tp == 5


def test_the_tp_fallback_warning_is_a_config_warning_from_the_layout():
    system = SystemConfig(npu_num=8, parallel="tensor")
    with pytest.warns(ConfigWarning, match=r"tensor parallelism 8 does not divide the 12 "
                                           r"attention heads, so"):
        layout = ParallelLayout.from_config(system, 12, 12)
    assert layout.attention == "requests"


@pytest.mark.parametrize("flags", [dict(npu_num=4), dict(npu_num=5, attention_placement="requests"),
                                   dict(npu_num=6, npu_group=2)])
def test_no_tp_warning_when_the_heads_divide_or_requests_is_asked_for(flags):
    parts = no_config_warning(lambda: build_instance(F(model_name="gpt2", **flags)))
    expected = flags.get("attention_placement", "heads")
    assert parts.layout.attention == expected


def test_tp_not_dividing_the_heads_is_an_error_with_heads_placement():
    with pytest.raises(ValueError, match=r"^attention_placement='heads': tensor parallelism 5 "
                                         r"must divide the 12 attention heads of 'gpt2' "
                                         r"\(npu_num=5, npu_group=1, parallel='hybrid' give a "
                                         r"5-way tensor-parallel group\); use "
                                         r"attention_placement='requests'"):
        build_instance(F(model_name="gpt2", npu_num=5, attention_placement="heads"))


def test_reference_runs_warn_about_nothing():
    """The bench/reference_runs.py configurations build without a warning. The
    pooled-PIM one (16 NPUs of gpt2's 12 heads) used to warn about the TP
    fallback from heads to requests placement; with pim_type given, 'auto' is
    the original's requests placement (docs/original-flags.md), so it is no
    fallback. The warning itself:
    test_tp_not_dividing_the_heads_switches_auto_to_requests_with_a_warning."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    try:
        from reference_runs import RUNS
    finally:
        sys.path.pop(0)
    warned = {}
    for name, (flags, _) in RUNS.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            build_instance(F(**flags))
        warned.update({name: [str(w.message) for w in caught]} if caught else {})
    assert warned == {}
