"""A 64-point sweep on 2 local Dask workers vs serial: speedup and per-point overhead.

    python bench/bench_sweep.py [--requests 40] [--workers 2]

Runs the same 64 points (gpt2; npu_num x max_batch x block_size x scheduling,
4 x 4 x 2 x 2) three ways and prints wall times:

* direct: ``Simulator(config, trace).run()`` in a loop; the pure simulation
  work, no validation, no files;
* serial sweep: ``sweep(..., client="serial")``: validation, a netCDF file per
  point and the summary, in this process;
* Dask sweeps: ``sweep(..., n_workers=1)`` (what Dask itself adds per point)
  and ``sweep(..., n_workers=2)``, each including starting and stopping its
  LocalCluster; for the latter, the CPU cores it actually got (CPU seconds of
  this process and its workers over wall seconds): on a machine shared with
  other work it gets fewer than 2 and cannot reach 2x.

Speedup = serial sweep / Dask sweep (ideal: the number of workers, on at
least as many cores). Per-point overhead = (worker-seconds the sweep used
minus the direct simulation time) / points: what the sweep machinery adds.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from llmsim_nb import SimConfig, Simulator, sweep
from llmsim_nb.sweeps.spec import SweepSpec
from llmsim_nb.workload import Trace

AXES = dict(npu_num=[1, 2, 4, 8], max_batch=[0, 4, 8, 16], block_size=[16, 32],
            scheduling=["orca", "chunked"])


def make_trace(n: int) -> Trace:
    rng = np.random.default_rng(0)
    arrivals = np.cumsum(rng.exponential(1 / 100.0, n))
    return Trace(arrival_at=arrivals - arrivals[0], num_prompt_tokens=rng.integers(16, 256, n),
                 num_output_tokens=rng.integers(8, 64, n), source=f"bench {n} requests")


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the Dask workers once
    the sweep has closed its cluster)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    base = SimConfig.from_flags(model_name="gpt2")
    trace = make_trace(args.requests)
    spec = SweepSpec(base, trace, axes=AXES)
    n = len(spec.points)
    print(f"{n} points ({' x '.join(f'{k}{v}' for k, v in AXES.items())}), "
          f"{args.requests} requests each, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f} (other processes competing for the cores lower the "
          f"speedup)")

    t = time.perf_counter()
    for point in spec.points:
        Simulator(point.config, trace).run()
    direct = time.perf_counter() - t

    root = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    try:
        t = time.perf_counter()
        serial_ds = sweep(base, trace, client="serial", out_dir=root / "serial", progress=False,
                          **AXES)
        serial = time.perf_counter() - t
        t = time.perf_counter()
        one_ds = sweep(base, trace, n_workers=1, out_dir=root / "one", progress=False, **AXES)
        one = time.perf_counter() - t
        t, cpu0 = time.perf_counter(), cpu_seconds()
        dask_ds = sweep(base, trace, n_workers=args.workers, out_dir=root / "dask",
                        progress=False, **AXES)
        dask = time.perf_counter() - t
        cores = (cpu_seconds() - cpu0) / dask
        t = time.perf_counter()
        sweep(base, trace, n_workers=args.workers, out_dir=root / "dask", progress=False, **AXES)
        resumed = time.perf_counter() - t
    finally:
        shutil.rmtree(root)
    assert (serial_ds.status == "ok").all() and (dask_ds.status == "ok").all()
    assert (one_ds.status == "ok").all()
    same = all(np.array_equal(serial_ds[v].values, dask_ds[v].values, equal_nan=True)
               for v in ("generation_throughput", "ttft_p99", "tpot_p50", "num_evictions"))
    w = args.workers
    print(f"{'':32s} {'wall s':>7} {'sim s':>7} {'overhead':>9}")
    print(f"{'direct loop (no sweep)':32s} {direct:7.2f} {'':>7} {'':>9}")
    for label, wall, workers, ds in (("serial sweep", serial, 1, serial_ds),
                                     ("Dask sweep, 1 local worker", one, 1, one_ds),
                                     (f"Dask sweep, {w} local workers", dask, w, dask_ds)):
        # Simulator time of the points, measured inside them; the rest of the
        # worker-seconds is what the sweep adds: validation, building simulators,
        # netCDF files, Dask scheduling and cluster start/stop.
        sim = float(ds.wall_time.sum())
        print(f"{label:32s} {wall:7.2f} {sim:7.2f} "
              f"{(wall * workers - sim) / n * 1e3:6.1f} ms/point")
    print(f"speedup serial / Dask, {w} workers {serial / dask:5.2f} x   (ideal {w:.1f} x on "
          f">= {w} free cores; direct / Dask {direct / dask:.2f} x)")
    print(f"CPU cores the {w}-worker sweep got {cores:5.2f}     (CPU s / wall s, client and "
          f"scheduler included; the speedup cannot exceed it)")
    print(f"resumed sweep (all 64 on disk)  {resumed:7.2f} s")
    print(f"serial and Dask figures identical: {same}; load average now "
          f"{os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
