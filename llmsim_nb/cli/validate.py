"""``llmsim validate``: simulate a trace and compare it with measurements of it.

::

    llmsim validate --measured results.csv --dataset trace.tsv --hardware rtx3090 \\
        --scheduling vllm --gpu_memory_utilization 0.9
    llmsim validate --curve vllm-gpt7b.csv --dataset share-gpt-req100-rate10.tsv ...

``--measured`` takes per-request results (a CSV with ``arrival, first_token,
finish``, or vLLM's ``benchmark_serving`` JSON, whose arrivals come from the
trace); ``--curve`` takes a throughput-over-time file (the paper's Fig. 6 CSV
or an ``llmsim run --output`` TSV). At least one is needed; every ``llmsim run``
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

    if args.measured is None and args.curve is None:
        raise ValueError("validate needs --measured (per-request results) and/or --curve "
                         "(throughput over time)")
    # Read the measurements before simulating, so a bad file fails fast.
    curve = load_throughput_curve(args.curve) if args.curve else None
    config = SimConfig.from_flags(**{name: getattr(args, name) for name, _, _ in flags
                                     if name != "output"})
    sim = Simulator(config)
    measured = (load_measured_requests(args.measured, arrivals=sim.trace.arrival_at)
                if args.measured else None)
    ds = sim.run()
    with pd.option_context("display.width", 120, "display.max_rows", 500):
        if measured is not None:
            table = compare_requests(measured, ds)
            print("serving metrics (s, 1/s): measured vs simulated")
            print(table.to_string(float_format=lambda x: f"{x:.4g}", na_rep="undefined"))
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


__all__ = ["add_validate_parser", "run_validate_command"]
