"""README.md's code runs as written, in an empty directory.

Every ```python block is run verbatim in a fresh interpreter (``python -c``, as
if pasted into a Python session or a notebook cell) whose working directory is
an empty ``tmp_path``; it must exit 0 within :data:`TIMEOUT_S`. Blocks that
continue an earlier one are listed in :data:`CONTINUES` and run joined to it.

```bash blocks are split into their ``&&`` steps; ``pip install`` steps are
never run (they change the environment: this suite runs in the installed
package already). What is left of a block is run when :data:`SHELL_RUN` lists
it and skipped, with its reason, when :data:`SHELL_SKIP` does; a block in
neither list fails :func:`test_every_shell_block_is_classified`, so a new one
cannot go untested silently. Fences without a language (the folder tree) are
text, not code.

The end of this file also checks the extras the README tells people to
install: ``llmsim_nb.viz`` without matplotlib names the ``notebooks`` extra.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
TIMEOUT_S = 300
_FENCE = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)

# A ```python block's first line -> the first line of the block it continues
# (it is run after that block's code, in the same interpreter). None today: each
# block is self-contained.
CONTINUES: dict[str, str] = {}
# A ```python block's first line -> why it cannot run in CI. None today.
PYTHON_SKIP: dict[str, str] = {}
# Shell commands (a block minus its pip-install steps) that are cheap and safe.
SHELL_RUN = {
    "llmsim run",  # the quick start: the packaged trace on the default NPU, < 1 s
    # "Prefix caching and the vLLM V1 scheduler": 320 generated requests, < 1 s
    "llmsim run --model_name llama-3.1-8b --hardware h100-sxm --scheduling vllm-v1 "
    "--shared_prefix 8,40,1024,128,64 --rate 40 --slo_ttft 0.2 --slo_tpot 0.05",
    # "Models of today": 200 generated requests on an MoE model with expert parallelism,
    # then with data-parallel attention, ~3 s each
    "llmsim run --model_name qwen3-30b-a3b --hardware h100-sxm --npu_num 4 "
    "--enable_expert_parallel --num_requests 200 --rate 8 && "
    "llmsim run --model_name qwen3-30b-a3b --hardware h100-sxm --npu_num 4 "
    "--enable_expert_parallel --attention_placement data --num_requests 200 --rate 8",
}
# Shell commands that are not run here, and why.
SHELL_SKIP = {
    "python3 -m pytest": "runs the whole test suite, this file included (what CI itself runs)",
}
_PIP_INSTALL = re.compile(r"^(python3? -m )?pip3? install\b")


def _blocks(language: str) -> list[tuple[int, str]]:
    """``(line, code)`` of README.md's fenced blocks in ``language``."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(2))
            for m in _FENCE.finditer(text) if m.group(1) == language]


def _first_line(code: str) -> str:
    return next((line.strip() for line in code.splitlines() if line.strip()), "")


def _shell_command(code: str) -> str:
    """A shell block's steps, without its ``pip install`` ones, joined by ``&&``."""
    steps = [s.strip() for s in " ".join(code.split("\\\n")).replace("\n", " && ").split("&&")]
    return " && ".join(s for s in steps if s and not _PIP_INSTALL.match(s))


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["MPLBACKEND"] = "Agg"
    env["LLMSIM_CACHE_DIR"] = str(tmp_path / "llmsim-cache")
    # this interpreter's scripts (``llmsim``) first on PATH
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("PYTHONPATH", None)  # the installed package, not a checkout on the path
    return env


def _run(args: list[str], cwd: Path, where: str) -> None:
    try:
        out = subprocess.run(args, check=False, cwd=cwd, env=_env(cwd), capture_output=True, text=True,
                             timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{where} ran past {TIMEOUT_S} s")
    assert out.returncode == 0, (f"{where} failed (exit {out.returncode}):\n"
                                 f"{out.stdout[-2000:]}\n{out.stderr[-4000:]}")


PYTHON_BLOCKS = _blocks("python")
SHELL_BLOCKS = _blocks("bash")


def test_the_readme_has_code_to_check():
    assert len(PYTHON_BLOCKS) >= 3 and SHELL_BLOCKS


@pytest.mark.parametrize("line, code", PYTHON_BLOCKS,
                         ids=[f"README.md:{line}" for line, _ in PYTHON_BLOCKS])
def test_python_block_runs_verbatim_in_an_empty_directory(line, code, tmp_path):
    first = _first_line(code)
    if first in PYTHON_SKIP:
        pytest.skip(f"README.md:{line}: {PYTHON_SKIP[first]}")
    if first in CONTINUES:
        earlier = [c for _, c in PYTHON_BLOCKS if _first_line(c) == CONTINUES[first]]
        assert earlier, f"README.md:{line} continues {CONTINUES[first]!r}, which is gone"
        code = earlier[0] + "\n" + code
    _run([sys.executable, "-c", code], tmp_path, f"the python block at README.md:{line}")
    assert not any(p.suffix == ".py" for p in tmp_path.iterdir())  # it wrote no code


def test_every_shell_block_is_classified():
    unknown = [(line, _shell_command(code)) for line, code in SHELL_BLOCKS
               if _shell_command(code) not in SHELL_RUN | set(SHELL_SKIP)]
    assert not unknown, ("README.md shell blocks in neither SHELL_RUN nor SHELL_SKIP of "
                         f"{Path(__file__).name}: {unknown}")


@pytest.mark.parametrize("line, code", SHELL_BLOCKS,
                         ids=[f"README.md:{line}" for line, _ in SHELL_BLOCKS])
def test_shell_block_runs_in_an_empty_directory(line, code, tmp_path):
    command = _shell_command(code)
    if command in SHELL_SKIP:
        pytest.skip(f"README.md:{line}: {command!r} {SHELL_SKIP[command]}")
    if command not in SHELL_RUN:
        pytest.fail(f"README.md:{line}: {command!r} is not classified (SHELL_RUN/SHELL_SKIP)")
    _run(["bash", "-c", f"set -euo pipefail; {command}"], tmp_path,
         f"the shell block at README.md:{line} ({command!r})")


# --- the notebooks extra ------------------------------------------------------------

_WITHOUT_MATPLOTLIB = textwrap.dedent("""
    import sys
    for name in ("matplotlib", "matplotlib.pyplot", "matplotlib.figure"):
        sys.modules[name] = None          # as if matplotlib were not installed
    import numpy as np
    from llmsim_nb import SimConfig, Simulator, viz
    from llmsim_nb.models.ops import BatchShape
    from llmsim_nb.workload import Trace

    trace = Trace(arrival_at=np.arange(8) * 0.004, num_prompt_tokens=np.full(8, 64),
                  num_output_tokens=np.full(8, 8), source="test")
    sim = Simulator(SimConfig.from_flags(model_name="gpt2"), trace)
    step = sim.step()
    graph = sim.last_graph
    ds = sim.run()
    block = sim.template.instantiate(BatchShape.from_lists([1] * 4, [100] * 4))[1]
    pim = Simulator(SimConfig.from_flags(model_name="gpt3-6.7b", npu_num=2, npu_mem=40, gen=True,
                                         pim_type="local", sub_batch=True),
                    Trace(arrival_at=np.zeros(4), num_prompt_tokens=np.full(4, 64),
                          num_output_tokens=np.ones(4, dtype=np.int64), source="pim")).step()
    calls = {
        "plot_throughput": lambda: viz.plot_throughput(ds),
        "plot_latency_cdf": lambda: viz.plot_latency_cdf(ds),
        "plot_kv_usage": lambda: viz.plot_kv_usage(ds),
        "plot_batch_composition": lambda: viz.plot_batch_composition(ds),
        "plot_block_table": lambda: viz.plot_block_table(sim.kv_cache),
        "plot_gantt": lambda: viz.plot_gantt(step),
        "plot_execution_graph": lambda: viz.plot_execution_graph(graph),
        "plot_roofline": lambda: viz.plot_roofline(viz.roofline_points(sim.engine, block)),
        "plot_npu_pim_overlap": lambda: viz.plot_npu_pim_overlap(pim),
        "plot_prefix_hit_rate": lambda: viz.plot_prefix_hit_rate(ds),
        "plot_curves": lambda: viz.plot_curves(None, None),
        "plot_power": lambda: viz.plot_power(
            Simulator(SimConfig.from_flags(model_name="gpt2", power=True), trace).run()),
    }
    public = {n for n in viz.__all__ if n.startswith("plot_")}
    assert public == set(calls), ("plot functions without a case here", public ^ set(calls))
    for name, call in calls.items():
        try:
            call()
        except ImportError as exc:
            expected = f"llmsim_nb.viz.{name} needs matplotlib: pip install 'llmsim_nb[notebooks]'"
            assert str(exc) == expected, (name, str(exc))
        else:
            raise AssertionError(f"{name} drew without matplotlib")
    print("ok", len(calls))
""")


def test_plots_without_matplotlib_name_the_notebooks_extra(tmp_path):
    out = subprocess.run([sys.executable, "-c", _WITHOUT_MATPLOTLIB], check=False,
                         cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True,
                         timeout=TIMEOUT_S)
    assert out.returncode == 0, out.stderr[-4000:]
    assert out.stdout.split() == ["ok", "12"]
