"""Derive the ``a100-vidur`` entry of ``llmsim_nb/presets/residuals.yaml``.

Reads Vidur's A100 operator profiles (``../shared/data/calibration/vidur_a100/
compute/*/*/mlp.csv``: 8 models, TP 1-8, 1-4096 tokens) and computes the
*out-of-sample* residual ``log(measured / predicted)`` of every timing the way
``bench/bench_gpu_ops.py`` reports its errors: each model's timings predicted
by a calibration fitted on the other seven (leave one model out), starting from
the datasheet A100 (``GPUSpec()``). Out of sample, because an error band is
about models and shapes the fit has not seen. The residuals are grouped by op
kind and stored as quantiles at 0, 0.05, ..., 1; the script prints the YAML
entry and each kind's p10 / p50 / p90.

Vidur's ``mlp.csv`` has no attention timings, so the table has no
``attention`` kind: a band leaves attention unperturbed and says so.

Usage: ``python bench/derive_residuals.py``
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import yaml

from llmsim_nb.engines.gpu import GPUEngine, GPUSpec
from llmsim_nb.engines.measurements import load_vidur
from llmsim_nb.fidelity.calibration import calibrate, predict
from llmsim_nb.fidelity.residuals import ResidualTable

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "calibration"
#: Presets whose efficiencies are this A100 fit (the a100_fit anchor of hardware.yaml).
HARDWARE = ("a100-80gb-calibrated",)


def main() -> int:
    files = sorted((DATA / "vidur_a100" / "compute").rglob("mlp.csv"))
    if not files:
        print(f"missing {DATA}/vidur_a100", file=sys.stderr)
        return 1
    t0 = time.perf_counter()
    parts = [load_vidur(f) for f in files]
    start = GPUEngine(GPUSpec())
    residuals, kinds = [], []
    for i, test in enumerate(parts):
        train = parts[0] if i else parts[1]
        for j, p in enumerate(parts):
            if j != i and p is not train:
                train = train + p
        fit = calibrate(start, train)
        residuals.append(np.log(test.latency / predict(fit.engine, test)))
        kinds.append(np.array([r.kind for r in test], dtype=object))
        print(f"  fold {i + 1}/{len(parts)} ({files[i].parent.name}) "
              f"{time.perf_counter() - t0:.0f} s", file=sys.stderr)
    residuals, kinds = np.concatenate(residuals), np.concatenate(kinds)
    source = (f"Out-of-sample log(measured/predicted) of the gpu engine on Vidur's A100 "
              f"profiles (../shared/data/calibration/vidur_a100/compute/*/*/mlp.csv, "
              f"{len(residuals)} timings of {len(parts)} models, TP 1-8, 1-4096 tokens): "
              "each model predicted by calibrate() fitted on the other seven, from the "
              "datasheet A100; bench/derive_residuals.py. No attention timings there.")
    table = ResidualTable.from_samples(
        {k: residuals[kinds == k] for k in np.unique(kinds)}, name="a100-vidur",
        source=source, hardware=HARDWARE)
    for kind in table.kinds:
        q = [table.quantile(kind, p) for p in (0.1, 0.5, 0.9)]
        print(f"# {kind:12} n={int((kinds == kind).sum()):6d} p10 {q[0]:+.3f} "
              f"p50 {q[1]:+.3f} p90 {q[2]:+.3f}")
    print(yaml.safe_dump({"a100-vidur": table.to_entry()}, sort_keys=False, width=100))
    return 0


if __name__ == "__main__":
    sys.exit(main())
