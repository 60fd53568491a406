"""``llmsim run`` with the vLLM V1 scheduler, prefix caching and the prefix-sharing
workloads: what the summary says, and one-line errors for bad flags."""

from __future__ import annotations

import pytest

from llmsim_nb.cli.main import main


def run(capsys, *argv):
    code = main(["run", "--model_name", "gpt2", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_shared_prefix_run_reports_the_hit_rate_and_goodput(capsys):
    code, out, _ = run(capsys, "--scheduling", "vllm-v1", "--shared_prefix", "2,5,64,16,4",
                       "--rate", "2", "--slo_ttft", "1", "--slo_tpot", "1")
    assert code == 0
    # 10 prompts of 80 tokens, two groups: 8 of them find the 64-token system prompt.
    assert "hit rate 64.0% (512 cached prompt tokens)" in out
    assert "goodput" in out and "scheduling          vllm-v1, prefix caching on" in out


def test_caching_off_and_the_original_policies_cache_nothing(capsys):
    _, out, _ = run(capsys, "--scheduling", "vllm-v1", "--enable_prefix_caching", "off",
                    "--shared_prefix", "2,5,64,16,4")
    assert "hit rate" not in out and "prefix caching off" in out
    _, out, _ = run(capsys, "--shared_prefix", "2,5,64,16,4")   # npu preset: auto = orca
    assert "scheduling          orca, prefix caching off" in out


def test_a_gpu_preset_defaults_to_vllm_v1_with_caching(capsys):
    _, out, _ = run(capsys, "--hardware", "a100-80gb", "--shared_prefix", "2,5,64,16,4")
    assert "scheduling          vllm-v1, prefix caching on" in out and "hit rate" in out


def test_multi_turn_sessions_run(capsys):
    code, out, _ = run(capsys, "--scheduling", "vllm-v1", "--multi_turn", "3,3,20,8,0.5")
    assert code == 0 and "requests finished   9 / 9" in out and "hit rate" in out


@pytest.mark.parametrize("argv, message", [
    (["--shared_prefix", "2,5,64,16"], "--shared_prefix '2,5,64,16': expected 5"),
    (["--shared_prefix", "2,5,0,16,4"], "SYSTEM_PROMPT_LEN=0 must be >= 1"),
    (["--multi_turn", "3,3,20,8,-1"], "THINK_TIME_S=-1 must be >= 0"),
    (["--shared_prefix", "2,5,64,16,4", "--num_requests", "3"], "cannot be combined with "
                                                                "--num_requests"),
    (["--shared_prefix", "2,5,64,16,4", "--multi_turn", "3,3,20,8,1"], "--multi_turn"),
    (["--enable_prefix_caching", "on"], "enable_prefix_caching=True needs scheduling='vllm-v1'"),
    (["--kv_offload_gib", "4"], "kv_offload_gib=4.0 needs scheduling='vllm-v1'"),
    (["--scheduling", "orca", "--preemption_mode", "recompute"],
     "preemption_mode='recompute' needs scheduling='vllm-v1'"),
    (["--scheduling_policy", "priority"], "scheduling_policy='priority' needs"),
    (["--scheduling", "vllm-v1", "--enable_chunked_prefill", "maybe"],
     "enable_chunked_prefill='maybe' is not one of ['on', 'off']"),
])
def test_bad_flags_are_one_line_errors(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and err.count("\n") == 1
