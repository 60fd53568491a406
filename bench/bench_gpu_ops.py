"""Op-level fidelity of the ``gpu`` engine against every A100 operator measurement.

Reads ``../shared/data/calibration/``:

- ``vidur_a100/compute/*/*/mlp.csv`` -- Vidur's per-op profiles of 8 models at
  TP 1-8 and 1-4096 tokens (91k timings, vLLM-style fused kernels);
- ``llmcompass_a100/*.csv`` -- LLMCompass's stand-alone PyTorch kernels
  (matmul, softmax, layernorm, gelu; 84 timings).

The two sources are different software stacks (and, judging by their GEMM
peaks, differently clocked A100s), so each is calibrated on its own. Errors are
*out of sample*: Vidur's by leave-one-model-out (fit on 7 models, predict the
8th), LLMCompass's by 2-fold cross-validation (fit on every other row, predict
the rest), so no measurement is ever predicted by a fit that saw it. Printed:
median and p90 absolute percentage error per op kind, for the datasheet
defaults (no fit) and for the cross-validated fit, then the parameters fitted on
all of Vidur's data (the ``a100-80gb-calibrated`` preset) and the residual
p10-p90 band.

Usage: ``python bench/bench_gpu_ops.py``
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from llmsim_nb.fidelity.calibration import calibrate, error_table, predict
from llmsim_nb.engines.gpu import GPUEngine, GPUSpec
from llmsim_nb.engines.hardware import get_hardware
from llmsim_nb.engines.measurements import load_llmcompass, load_vidur

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "calibration"
TARGET = 0.10


def cross_validated(measurements, folds: np.ndarray, start: GPUEngine) -> np.ndarray:
    """Out-of-sample predictions: each fold predicted by a fit on the others."""
    predicted = np.zeros(len(measurements))
    for fold in np.unique(folds):
        train = measurements.select(folds != fold)
        test = measurements.select(folds == fold)
        fit = calibrate(start, train)
        predicted[folds == fold] = predict(fit.engine, test)
    return predicted


def show(title: str, table: pd.DataFrame) -> None:
    print(title)
    print(f"  {'op kind':32} {'n':>6} {'median APE':>11} {'p90 APE':>9} {'median ratio':>13}")
    for label, row in table.iterrows():
        flag = "" if row["median_ape"] < TARGET else "  (above 10%)"
        print(f"  {label:32} {int(row['n']):6d} {row['median_ape']:10.1%} {row['p90_ape']:9.1%} "
              f"{row['median_ratio']:13.3f}{flag}")


def main() -> int:
    if not DATA.is_dir():
        print(f"missing {DATA}", file=sys.stderr)
        return 1
    start = GPUEngine(GPUSpec())  # datasheet A100 80GB, default efficiencies
    t0 = time.perf_counter()
    files = sorted((DATA / "vidur_a100" / "compute").rglob("mlp.csv"))
    parts = [load_vidur(f) for f in files]
    vidur = parts[0]
    for p in parts[1:]:
        vidur = vidur + p
    model_fold = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
    compass = load_llmcompass(DATA / "llmcompass_a100")
    print(f"loaded {len(vidur)} Vidur and {len(compass)} LLMCompass timings "
          f"({time.perf_counter() - t0:.1f} s)\n")

    for name, rows, folds in (("Vidur (vLLM kernels, A100)", vidur, model_fold),
                              ("LLMCompass (PyTorch kernels, A100)", compass,
                               np.arange(len(compass)) % 2)):
        show(f"{name}: datasheet defaults, no fit",
             error_table(rows.latency, predict(start, rows), rows.labels))
        t0 = time.perf_counter()
        out = cross_validated(rows, folds, start)
        table = error_table(rows.latency, out, rows.labels)
        show(f"{name}: calibrated, out of sample ({len(np.unique(folds))} folds, "
             f"{time.perf_counter() - t0:.0f} s)", table)
        worst = table["median_ape"].max()
        print(f"  worst median APE {worst:.1%} (target < {TARGET:.0%}: "
              f"{'met' if worst < TARGET else 'NOT met'})\n")

    fit = calibrate(start, vidur)
    print("A100 calibration on all Vidur timings (the a100-80gb-calibrated preset):")
    for k, v in fit.params.items():
        tag = " (no measurement constrains it; kept)" if k in fit.unconstrained else ""
        print(f"  {k:34} {v * 1e6:.2f} us{tag}" if k.endswith("overhead") else
              f"  {k:34} {v:.3f}{tag}")
    lo, hi = fit.residual_quantiles()
    print(f"  residual log(measured/predicted) p10 {lo:+.3f}, p90 {hi:+.3f}: a predicted "
          f"latency t carries the band [{np.exp(lo):.3f} t, {np.exp(hi):.3f} t]")
    preset = get_hardware("a100-80gb-calibrated").spec
    drift = {k: (getattr(preset, k), v) for k, v in fit.params.items()
             if k not in fit.unconstrained
             and abs(getattr(preset, k) - v) > 0.01 * max(abs(v), 1e-6)}
    print("  preset matches this fit" if not drift else
          f"  preset differs from this fit in {sorted(drift)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
