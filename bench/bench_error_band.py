"""Cost and sampling noise of ``error_band`` against the number of re-runs.

For LLaMA-7B on the ``a100-80gb-calibrated`` preset serving the packaged
``default_trace()`` (100 ShareGPT-like requests at 10 req/s), with the stored
``a100-vidur`` residuals, this prints for ``num_runs`` in 4, 8, 16, 32, 64 and
three seeds: the p10 / p90 of mean TPOT and mean TTFT (relative to the point
prediction) and the wall time. The spread of a quantile over seeds is the
sampling noise of the band at that ``num_runs``; the default (16) is chosen
where it is small beside the band's width at a bounded cost (17 runs).

Usage: ``python bench/bench_error_band.py``
"""

from __future__ import annotations

import sys
import time

import numpy as np

from llmsim_nb import SimConfig
from llmsim_nb.fidelity.error_band import error_band
from llmsim_nb.workload import default_trace

SEEDS = (0, 1, 2)


def main() -> int:
    config = SimConfig.from_flags(model_name="llama-7b", hardware="a100-80gb-calibrated")
    trace = default_trace()
    print("LLaMA-7B, a100-80gb-calibrated, default_trace(), residuals a100-vidur")
    print(f"  {'runs':>4} {'seed':>4} {'TPOT p10':>9} {'TPOT p90':>9} {'TTFT p10':>9} "
          f"{'TTFT p90':>9} {'wall':>7}")
    for num_runs in (4, 8, 16, 32, 64):
        widths = []
        for seed in SEEDS:
            t0 = time.perf_counter()
            band = error_band(config, trace=trace, num_runs=num_runs, seed=seed)
            wall = time.perf_counter() - t0
            tpot = band["tpot_mean"].values / float(band["tpot_mean_point"]) - 1
            ttft = band["ttft_mean"].values / float(band["ttft_mean_point"]) - 1
            widths.append(tpot[-1] - tpot[0])
            print(f"  {num_runs:4d} {seed:4d} {tpot[0]:+9.1%} {tpot[-1]:+9.1%} "
                  f"{ttft[0]:+9.1%} {ttft[-1]:+9.1%} {wall:6.1f}s")
        print(f"  {num_runs:4d}  TPOT p10-p90 width over seeds: {np.mean(widths):.1%} "
              f"+- {np.std(widths):.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
