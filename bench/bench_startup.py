"""Start-up time: how long a fresh process takes to answer.

Targets (issue "One house for instances and clusters"): ``llmsim --help``
< 0.3 s, ``python -c "import llmsim_nb"`` < 0.5 s, and the default
``llmsim run`` (GPT3-6.7B on the paper's NPU, the packaged 100-request trace)
< 1.0 s wall in total. Each command runs in 5 fresh processes after one
untimed warm-up (so the OS file cache is warm, as on a second invocation);
the median, min and max wall times are printed with the target and the ratio.

Also printed: what ``import llmsim_nb`` and ``llmsim --help`` import (whether
numpy, xarray, pandas, dask, onnx or matplotlib load), from ``sys.modules``.

Usage: ``python bench/bench_startup.py [--runs N]``
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time

HEAVY = ("numpy", "xarray", "pandas", "dask", "onnx", "matplotlib", "scipy", "yaml")


def _llmsim() -> list[str]:
    exe = shutil.which("llmsim")
    return [exe] if exe else [sys.executable, "-m", "llmsim_nb.cli"]


def _time(cmd: list[str], runs: int) -> list[float]:
    subprocess.run(cmd, check=True, capture_output=True)  # warm-up, untimed
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        out.append(time.perf_counter() - start)
    return out


def _loaded(code: str) -> list[str]:
    probe = (f"import sys\n{code}\n"
             f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                            text=True)
    return result.stdout.split()


def main(argv: list[str]) -> int:
    runs = int(argv[argv.index("--runs") + 1]) if "--runs" in argv else 5
    cases = [("llmsim --help", _llmsim() + ["--help"], 0.3),
             ('python -c "import llmsim_nb"', [sys.executable, "-c", "import llmsim_nb"], 0.5),
             ("llmsim run (default)", _llmsim() + ["run", "--quiet"], 1.0)]
    print(f"{'command':32s} {'median':>8s} {'min':>8s} {'max':>8s} {'target':>8s} "
          f"{'median/target':>14s}")
    for label, cmd, target in cases:
        times = _time(cmd, runs)
        med = statistics.median(times)
        print(f"{label:32s} {med:7.3f}s {min(times):7.3f}s {max(times):7.3f}s "
              f"{target:7.1f}s {med / target:14.2f}")
    print()
    print("heavy modules loaded by `import llmsim_nb`:",
          ", ".join(_loaded("import llmsim_nb")) or "none")
    print("heavy modules loaded by building the CLI parser:",
          ", ".join(_loaded("from llmsim_nb.cli.main import _build_parser; _build_parser()"))
          or "none")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
