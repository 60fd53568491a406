"""Refit the interconnect collective constants from measured profiles and print the errors.

Usage::

    python bench/fit_collectives.py [DATA_DIR]

``DATA_DIR`` defaults to ``../shared/data`` next to the repository. For the A100 DGX
profiles in ``calibration/vidur_a100/network/a100_dgx`` (NVSwitch; the preset
``nvlink3``) and each collective it fits
``T = steps * alpha + bytes_per_device / B`` (``llmsim_nb.fidelity.collective_fit``)
with every algorithm a Switch runs, bounded by the NVLink 3 peak of 300 GB/s per
GPU and direction, and prints alpha, B and the median / max relative error per
size range and device count, in sample and leave-one-device-count-out. The
constants of the ``nvlink3`` preset (``llmsim_nb/network/interconnect.py``) are
the ``a100_dgx`` ``direct`` lines.
"""

from __future__ import annotations

import sys
from pathlib import Path

from llmsim_nb.fidelity.collective_fit import error_table, fit_points, \
    leave_one_device_count_out, load_profile
from llmsim_nb.network.interconnect import get_interconnect

PEAK = 300e9  # NVLink 3: 12 links x 25 GB/s per direction (A100 datasheet)


def _print_rows(label: str, rows) -> None:
    for size_range, devices, count, median, worst in rows:
        print(f"  {label:<6} {size_range:<11} n={devices:<4} points={count:<5} "
              f"median {100 * median:6.1f}%  max {100 * worst:7.1f}%")


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[2] / "shared/data"
    base = root / "calibration/vidur_a100/network"
    if not base.is_dir():
        raise SystemExit(f"fit_collectives: {base} is not a directory (pass DATA_DIR)")
    # a100_pairwise_nvlink is left out: its 4-GPU rows cross PCIe between NVLink pairs,
    # a two-level network no interconnect preset stands for.
    for platform in (base / "a100_dgx",):
        for csv_path in sorted(platform.glob("*.csv")):
            points = load_profile(csv_path)
            kind = csv_path.stem
            algorithms = ("direct",) if kind == "send_recv" else ("direct", "ring",
                                                                  "halving_doubling")
            for alg in algorithms:
                fit = fit_points(points, kind, alg, PEAK)
                print(f"{platform.name} {kind} {alg}: alpha {fit.step_latency * 1e6:.2f} us, "
                      f"B {fit.bandwidth / 1e9:.1f} GB/s")
                _print_rows("in", error_table(fit))
                _print_rows("lodo", leave_one_device_count_out(points, kind, alg, PEAK))
    fit = get_interconnect("nvlink3").collective
    print(f"nvlink3 preset: {fit.algorithm}, alpha {fit.step_latency * 1e6:.2f} us, "
          f"B {fit.bandwidth / 1e9:.1f} GB/s, send {fit.send_latency * 1e6:.2f} us + "
          f"size / {fit.send_bandwidth / 1e9:.1f} GB/s")
    for alg, alpha, bandwidth in fit.others:
        print(f"  --collective {alg}: alpha {alpha * 1e6:.2f} us, B {bandwidth / 1e9:.1f} GB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
