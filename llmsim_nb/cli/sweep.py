"""``llmsim sweep --config sweep.yaml``: the sweep's command line.

The YAML file (see :func:`~llmsim_nb.sweeps.spec.read_sweep_yaml`)::

    base:                 # llmsim run flags every point starts from
      model_name: gpt2
      dataset: my-trace.tsv
    axes:                 # cartesian product, first axis slowest
      npu_num: [1, 2, 4]
      scheduling: [orca, chunked]
    # points: [{npu_num: 1}, {npu_num: 4, npu_group: 2}]   # instead of axes
    out_dir: sweep-results   # points/<key>.nc and sweep.nc; re-running resumes
    workers: 2               # LocalCluster processes (default: one per CPU)
    # scheduler_address: tcp://host:8786   # run on an existing Dask cluster

A file with a ``cluster:`` key (a cluster description, as ``llmsim cluster
--config`` files hold) instead of ``base`` sweeps cluster shapes
(:func:`~llmsim_nb.sweeps.cluster_sweep.cluster_sweep`)::

    cluster:
      base: {model_name: llama-3.1-8b, hardware: h100-sxm, scheduling: vllm-v1}
      instances:
        - {name: prefill, count: 1, role: prefill}
        - {name: decode, count: 1, role: decode}
    axes:                 # cluster fields, <group>_count, <group>_<flag>
      router: [round_robin, least_outstanding]
      decode_count: [1, 2]

Prints one line per point; exit status 0 when every point ran, 1 when some
failed (each named on stderr with its error), 2 for bad input (nothing run).
"""

from __future__ import annotations

import argparse
import sys
import warnings

_COLUMNS = (("generation_throughput", "gen tok/s", 1.0, "{:10.1f}"),
            ("ttft_p50", "TTFT p50 ms", 1e3, "{:11.2f}"),
            ("tpot_p50", "TPOT p50 ms", 1e3, "{:11.2f}"),
            ("e2e_p99", "E2E p99 s", 1.0, "{:9.3f}"),
            ("kv_usage_peak", "KV peak", 1.0, "{:7.1%}"),
            ("num_evictions", "evict", 1.0, "{:5.0f}"))


def add_sweep_parser(sub) -> None:
    """Add the ``sweep`` subcommand to ``llmsim``'s subparsers."""
    p = sub.add_parser("sweep", help="run a design-space sweep from a YAML file")
    p.add_argument("--config", required=True, help="sweep YAML (base, axes or points, ...)")
    p.add_argument("--out_dir", default=None, help="results folder (overrides the file's)")
    p.add_argument("--workers", type=int, default=None,
                   help="LocalCluster worker processes (overrides the file's)")
    p.add_argument("--scheduler_address", default=None,
                   help="address of a running Dask scheduler to use instead of a LocalCluster")
    p.add_argument("--serial", action="store_true", help="run points one by one, no Dask")
    p.add_argument("--no_resume", action="store_true", help="rerun points already on disk")
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")


def _label(ds, index: tuple[int, ...]) -> str:
    if "point" in ds.dims:
        names = [c for c in ds.coords if c != "point"]
        return ", ".join(f"{n}={ds[n].values[index[0]]}" for n in names)
    return ", ".join(f"{d}={ds[d].values[i]}" for d, i in zip(ds.dims, index))


def run_sweep_command(args: argparse.Namespace) -> int:
    import numpy as np

    from ..sweeps.cluster_sweep import cluster_sweep
    from ..sweeps.spec import read_sweep_yaml
    from ..sweeps.sweep import SweepWarning, sweep

    spec = read_sweep_yaml(args.config)
    out_dir = args.out_dir or spec.get("out_dir") or "llmsim-sweep"
    workers = args.workers if args.workers is not None else spec.get("workers")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    address = args.scheduler_address or spec.get("scheduler_address")
    if args.serial and address:
        raise ValueError("--serial runs without Dask; it cannot use scheduler_address")
    client = "serial" if args.serial else None
    if address:
        from distributed import Client

        client = Client(address, timeout="10s")
        workers = None
    kwargs = dict(spec.get("axes") or {})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SweepWarning)  # reported below, one line each
            if "cluster" in spec:
                ds = cluster_sweep(spec["cluster"], None, client=None if args.serial else client,
                                   serial=args.serial, out_dir=out_dir,
                                   workers=None if address or args.serial else workers,
                                   resume=not args.no_resume, progress=not args.quiet,
                                   validate=spec.get("validate", True), **kwargs)
            else:
                ds = sweep(spec.get("base") or {}, None, points=spec.get("points"),
                           client=client, out_dir=out_dir,
                           n_workers=None if address or args.serial else workers,
                           resume=not args.no_resume, progress=not args.quiet,
                           validate=spec.get("validate", True), **kwargs)
    except KeyboardInterrupt:
        print(f"llmsim: sweep interrupted; the points that finished are in "
              f"{out_dir}/points and running the same command again resumes from them",
              file=sys.stderr)
        return 130
    finally:
        if address:
            client.close()
    status = ds["status"].values
    if not args.quiet:
        head = "  ".join(title for _, title, _, _ in _COLUMNS)
        print(f"{'point':40s}  {head}")
        for index in np.ndindex(status.shape):
            if status[index] != "ok":
                continue
            cells = "  ".join(fmt.format(float(ds[name].values[index]) * scale)
                              for name, _, scale, fmt in _COLUMNS)
            print(f"{_label(ds, index)[:40]:40s}  {cells}")
        print(f"{ds.attrs['num_points']} points, {ds.attrs['num_failed']} failed; "
              f"results in {ds.attrs['out_dir']}")
    failed = [index for index in np.ndindex(status.shape) if status[index] != "ok"]
    for index in failed:
        print(f"llmsim: point failed [{_label(ds, index)}]: {ds['error'].values[index]}",
              file=sys.stderr)
    return 1 if failed else 0
