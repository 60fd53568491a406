"""``llmsim validate``: simulate a trace and compare it with measurements of it.

::

    llmsim validate --measured results.csv --dataset trace.tsv --hardware rtx3090 \\
        --scheduling vllm --gpu_memory_utilization 0.9
    llmsim validate --curve vllm-gpt7b.csv --dataset share-gpt-req100-rate10.tsv ...
    llmsim validate --vllm_run ../shared/data/serving/vllm019_rtx4090_llama31_8b

``--measured`` takes per-request results (a CSV with ``arrival, first_token,
finish``, or vLLM's ``benchmark_serving`` JSON, whose arrivals come from the
trace); ``--curve`` takes a throughput-over-time file (the paper's Fig. 6 CSV
or an ``llmsim run --output`` TSV); ``--vllm_run`` a vLLM run directory
(``requests.csv`` + ``meta.json``, :mod:`llmsim_nb.fidelity.vllm_run`): its trace,
its recorded settings as flags (flags given here override them) and its
engine-clock request times. At least one is needed; every ``llmsim run``
flag configures the simulation. It prints each metric measured vs simulated
with its error, and the two curves side by side.
"""

from __future__ import annotations

import argparse


def add_validate_parser(sub, flags) -> None:
    """Add the ``validate`` subcommand; ``flags`` is the ``llmsim run`` flag table."""
    parser = sub.add_parser("validate", help="compare a simulated run with measurements")
    parser.add_argument("--measured", type=str, default=None,
                        help="per-request results: CSV (arrival, first_token, finish) or "
                             "vLLM benchmark_serving JSON")
    parser.add_argument("--curve", type=str, default=None,
                        help="measured throughput over time (Fig. 6 CSV or -throughput.tsv)")
    parser.add_argument("--vllm_run", type=str, default=None,
                        help="a vLLM run directory (requests.csv + meta.json): its trace, "
                             "settings and per-request engine timestamps")
    parser.add_argument("--band", action="store_true", default=False,
                        help="also print the p10-p50-p90 error band of the serving metrics "
                             "(op-level residuals propagated by re-running; "
                             "docs/error-bands.md) and whether each measured value is inside")
    parser.add_argument("--band_runs", type=int, default=None,
                        help="perturbed re-runs of --band (default 16)")
    parser.add_argument("--band_seed", type=int, default=None,
                        help="seed of --band's residual draws (default 0)")
    parser.add_argument("--residuals", type=str, default=None,
                        help="residual table of --band (presets/residuals.yaml; default: "
                             "the table naming --hardware)")
    for name, kind, text in flags:
        if name == "output":
            continue
        if kind is None:
            parser.add_argument(f"--{name}", action="store_true", default=None, help=text)
        else:
            parser.add_argument(f"--{name}", type=kind, default=None, help=text)


def run_validate_command(args: argparse.Namespace, flags) -> int:
    """Simulate with the run flags, load the measurements, print the comparison.

    Both measurement files are read and checked before anything is simulated;
    a bad one ends the command with a one-line error. Relative errors against
    a measured 0 are printed as ``undefined``, never ``inf%`` or ``nan%``.
    """
    import math

    import pandas as pd

    from ..config import SimConfig
    from ..fidelity.validate import (compare_curves, compare_requests, curves_side_by_side,
                           load_measured_requests, load_throughput_curve, simulated_curve)
    from ..instance.simulator import Simulator

    if getattr(args, "vllm_run", None):
        return _validate_vllm_run(args, flags)
    if args.measured is None and args.curve is None:
        raise ValueError("validate needs --measured (per-request results) and/or --curve "
                         "(throughput over time) or --vllm_run (a vLLM run directory)")
    band_args = {"--band_runs": args.band_runs, "--band_seed": args.band_seed,
                 "--residuals": args.residuals}
    if not args.band and any(v is not None for v in band_args.values()):
        given = [k for k, v in band_args.items() if v is not None]
        raise ValueError(f"{', '.join(given)} only apply with --band")
    if args.band and args.measured is None:
        raise ValueError("--band compares the band with --measured per-request results; "
                         "give --measured")
    if args.band_runs is not None and args.band_runs < 1:
        raise ValueError(f"--band_runs must be >= 1, got {args.band_runs}")
    if args.band_seed is not None and args.band_seed < 0:
        raise ValueError(f"--band_seed must be >= 0, got {args.band_seed}")
    # Read the measurements before simulating, so a bad file fails fast.
    curve = load_throughput_curve(args.curve) if args.curve else None
    config = SimConfig.from_flags(**{name: getattr(args, name) for name, _, _ in flags
                                     if name != "output"})
    # The band's residual table too: no table for --hardware fails before any run.
    residuals = _band_residuals(config, args) if args.band else None
    sim = Simulator(config)
    measured = (load_measured_requests(args.measured, arrivals=sim.trace.arrival_at)
                if args.measured else None)
    ds = sim.run()
    with pd.option_context("display.width", 120, "display.max_rows", 500):
        if measured is not None:
            table = compare_requests(measured, ds)
            print("serving metrics (s, 1/s): measured vs simulated")
            print(table.to_string(float_format=lambda x: f"{x:.4g}", na_rep="undefined"))
            if args.band:
                _print_band(config, sim.trace, measured, residuals, args)
        if curve is not None:
            sim_curve = simulated_curve(ds, curve.interval)
            print("throughput curves (tokens/s): measured vs simulated")
            print(curves_side_by_side(curve, sim_curve).to_string(float_format="{:.1f}".format))
            for key, value in compare_curves(curve, sim_curve).items():
                if math.isfinite(value):
                    print(f"{key:28} {value:+.1%}")
                else:  # a throughput measured as 0 in every interval
                    kind = key.split("_")[0]
                    print(f"{key:28} undefined (the measured {kind} throughput is 0 in every "
                          "interval)")
    return 0


def _band_residuals(config, args: argparse.Namespace):
    """The residual table of ``--band``: ``--residuals`` or the one naming ``--hardware``."""
    from ..fidelity.residuals import get_residuals, residuals_for_hardware

    if args.residuals:
        return get_residuals(args.residuals)
    try:
        return residuals_for_hardware(config.hardware)
    except ValueError as error:
        raise ValueError(f"--band: {error}".replace("pass residuals=", "pass --residuals "))


def _print_band(config, trace, measured, residuals, args: argparse.Namespace) -> None:
    """The error band of the serving metrics beside the measured values."""
    from ..fidelity.error_band import DEFAULT_NUM_RUNS, band_table, error_band
    from ..fidelity.validate import request_metrics, simulated_requests

    band = error_band(config, trace=trace, residuals=residuals,
                      num_runs=DEFAULT_NUM_RUNS if args.band_runs is None else args.band_runs,
                      seed=0 if args.band_seed is None else args.band_seed,
                      metrics=lambda ds: request_metrics(simulated_requests(ds)))
    table = band_table(band, request_metrics(measured))
    table["inside"] = table["inside"].map({True: "inside", False: "OUTSIDE", None: "undefined"})
    print(f"error band ({band.attrs['num_runs']} re-runs, residuals {band.attrs['residuals']}, "
          f"seed {band.attrs['seed']}; not perturbed: "
          f"{band.attrs['unperturbed_kinds'] or 'none'}, collectives, host time)")
    print(table.to_string(float_format=lambda x: f"{x:.4g}"))


def _validate_vllm_run(args: argparse.Namespace, flags) -> int:
    """``--vllm_run DIR``: simulate its trace with its recorded settings, compare."""
    import pandas as pd

    from ..config import SimConfig
    from ..fidelity.validate import compare_requests
    from ..fidelity.vllm_run import engine_clock_requests, load_vllm_run
    from ..instance.simulator import Simulator

    run = load_vllm_run(args.vllm_run)
    given = {name: getattr(args, name) for name, _, _ in flags
             if name != "output" and getattr(args, name) is not None}
    settings = {**run.flags, **given}
    print("settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    ds = Simulator(SimConfig.from_flags(**settings), run.trace).run()
    table = compare_requests(run.measured, engine_clock_requests(ds))
    with pd.option_context("display.width", 120, "display.max_rows", 500):
        print("serving metrics from the engine queue (s, 1/s): measured vs simulated")
        print(table.to_string(float_format=lambda x: f"{x:.4g}", na_rep="undefined"))
    for key in ("ttft_mean", "tpot_mean", "output_throughput"):
        print(f"{key:20} error {table.loc[key, 'error']:+.1%}")
    return 0


__all__ = ["add_validate_parser", "run_validate_command"]
