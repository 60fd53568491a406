"""Design-space sweeps: many full simulations on Dask, one xarray Dataset back.

>>> from llmsim_nb import SimConfig, sweep
>>> ds = sweep(SimConfig.from_flags(model_name="gpt2"), trace,
...            npu_num=[1, 2, 4], scheduling=["orca", "chunked"])   # doctest: +SKIP
>>> ds.generation_throughput.sel(scheduling="orca")                 # doctest: +SKIP

Every figure of :func:`~llmsim_nb.results.metrics.summarize` is kept per point
(:data:`SUMMARY_UNITS`); ``slo_ttft`` / ``slo_tpot`` give the goodput ones, so a
goodput-vs-throughput Pareto front is one call::

    ds = sweep(base, trace, max_batch=[8, 32, 128], slo_ttft=0.5, slo_tpot=0.05)
    ds.goodput, ds.output_throughput, ds.prefix_hit_rate

Each point is a complete ``Simulator(config, trace).run()`` in a Dask worker
process (a ``LocalCluster`` the sweep starts and stops when no client is
given, or the user's ``distributed.Client``, so the same call runs on a real
cluster). A worker writes its point's full result to
``out_dir/points/<key>.nc`` as soon as the point finishes, atomically (write
to a temporary name, then rename), where ``key`` hashes the point's config,
its trace and the package version. A later sweep over the same ``out_dir``
loads the points already written instead of running them again, so an
interrupted sweep resumes where it stopped. A point that raises is recorded
with its error and config while the others run on (whatever it raised, even
if its worker died or the cluster failed), and the sweep Dataset is always
written; bad points are found before anything runs (see
:class:`~llmsim_nb.sweeps.spec.SweepSpec`), and so is a sweep that would
start worker processes from a script's unguarded top-level code
(:func:`~llmsim_nb.sweeps.checks.check_main_guard`).

On a multi-machine cluster ``out_dir`` must be a filesystem the workers and
the client share.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from .._version import __version__
from ..config import SimConfig
from ..results.metrics import check_slo
from ..workload import Trace
from .execution import (SUMMARY_UNITS, SweepWarning, run_points, run_task, summary_variables,
                        warn_failed, write_atomic)
from .spec import SweepSpec

__all__ = ["sweep", "run_point", "SweepWarning", "SUMMARY_UNITS"]


def run_point(config_json: str, trace: Trace, path: str, *, slo_ttft: float | None = None,
              slo_tpot: float | None = None) -> dict[str, Any]:
    """Simulate one point, write its Dataset to ``path``, return its summary.

    Runs in a worker process. Exceptions are caught and returned (status
    ``failed`` with the error and traceback) so one bad point never stops a
    sweep; anything that kills the worker itself is caught by the client.
    ``slo_ttft`` / ``slo_tpot`` go to :func:`~llmsim_nb.results.metrics.summarize`
    (the goodput figures).
    """
    from ..instance.simulator import Simulator

    return run_task(lambda: Simulator(SimConfig.from_json(config_json), trace).run(), path,
                    slo_ttft=slo_ttft, slo_tpot=slo_tpot)


def sweep(base_config: SimConfig | Mapping[str, Any] | None = None,
          trace: Trace | Mapping[str, Trace] | None = None, *,
          points: Sequence[Mapping[str, Any]] | None = None, client: Any = None,
          out_dir: str | Path = "llmsim-sweep", n_workers: int | None = None,
          resume: bool = True, progress: bool = True, validate: bool = True,
          slo_ttft: float | None = None, slo_tpot: float | None = None,
          **axes: Sequence[Any]) -> xr.Dataset:
    """Run a design-space sweep and return one Dataset with a dim per axis.

    Parameters
    ----------
    base_config : SimConfig or mapping of ``llmsim run`` flags, optional
        What every point starts from (default ``SimConfig()``).
    trace : Trace or mapping of label -> Trace, optional
        The requests every point serves; a mapping adds a ``trace`` axis.
        None loads the base config's dataset (or the packaged trace), or each
        point's ``dataset`` when ``dataset`` is swept.
    points : list of mappings, optional
        Explicit points (flag -> value) instead of axes; the Dataset then has
        a ``point`` dim with a coordinate per flag.
    client : distributed.Client, "serial" or None
        None starts a ``LocalCluster`` of ``n_workers`` processes for the
        sweep; a Client runs on its cluster; "serial" runs every point in this
        process, one after another (no Dask; for debugging and comparison).
    out_dir : path
        Where ``points/<key>.nc`` (each point's full Dataset) and
        ``sweep.nc`` (the returned Dataset) are written.
    n_workers : int, optional
        Worker processes of the LocalCluster; default ``min(cpus, points)``.
    resume : bool
        Load points whose result file exists instead of running them.
    progress : bool
        Show a progress bar (a widget in notebooks, text in a terminal).
    validate : bool
        Check every point can be built before running any (see
        :class:`~llmsim_nb.sweeps.spec.SweepSpec`).
    slo_ttft, slo_tpot : float, optional
        Service-level objectives in seconds (finite, > 0) passed to
        :func:`~llmsim_nb.results.metrics.summarize` for every point's
        ``goodput`` / ``goodput_fraction`` (NaN without an SLO). They are
        not part of a point's result file: a resumed point is summarized
        again under the SLOs given now. Recorded in ``attrs["slos"]`` (JSON).
    **axes : list
        Flag name -> values, e.g. ``npu_num=[1, 2, 4]`` or
        ``enable_prefix_caching=["on", "off"]``; the cartesian product is
        run, the first axis varying slowest.

    Returns
    -------
    xarray.Dataset
        Per point: the figures of :data:`SUMMARY_UNITS` (NaN where it failed),
        ``status`` ("ok" or "failed"), ``error``, ``result_path``, ``config``
        (JSON) and ``resumed`` (loaded from an earlier sweep).

    Raises
    ------
    ValueError
        Bad axes or points, listing every invalid point before any runs; an
        SLO that is not None nor a finite number of seconds > 0.

    Warns
    -----
    SweepWarning
        When points failed, naming each with its flags and error.
    """
    if client is not None and n_workers is not None:
        raise ValueError("n_workers sizes the LocalCluster sweep starts; a client brings "
                         "its own workers, so give one or the other")
    if n_workers is not None and (isinstance(n_workers, bool) or not isinstance(n_workers, int)
                                  or n_workers < 1):
        raise ValueError(f"n_workers must be an integer >= 1, got {n_workers!r}")
    if isinstance(client, str) and client != "serial":
        raise ValueError(f"client={client!r}: give a distributed.Client, 'serial' or None")
    slos = {"slo_ttft": check_slo("slo_ttft", slo_ttft),
            "slo_tpot": check_slo("slo_tpot", slo_tpot)}
    spec = SweepSpec(base_config, trace, axes=axes, points=points, validate=validate)
    out = Path(out_dir).resolve()
    results = run_points(spec.points, spec.traces, out, task=run_point,
                         payload=lambda p: p.config.to_json(), client=client,
                         n_workers=n_workers, resume=resume, slos=slos, progress=progress)
    ds = _assemble(spec, results, out, slos)
    write_atomic(ds, out / "sweep.nc")
    warn_failed(spec.points, results, stacklevel=2)
    return ds


def _assemble(spec: SweepSpec, results: dict[str, dict[str, Any]], out: Path,
              slos: dict[str, float | None]) -> xr.Dataset:
    data = summary_variables(spec.points, results, spec.dims, spec.shape, {
        "config": ("the point's SimConfig as JSON", lambda p: p.config.to_json())})
    num_failed = sum(results[p.key]["status"] != "ok" for p in spec.points)
    attrs = {"base_config": spec.base.to_json(), "dims": json.dumps(list(spec.dims)),
             "traces": json.dumps({str(k): t.source for k, t in spec.traces.items()}),
             "num_points": len(spec.points), "num_failed": num_failed,
             "out_dir": str(out), "slos": json.dumps(slos),
             "llmsim_nb_version": __version__}
    return xr.Dataset(data, coords=spec.coords(), attrs=attrs)
