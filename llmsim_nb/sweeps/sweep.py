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
import logging
import math
import os
import traceback
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .._version import __version__
from ..config import SimConfig
from ..results.metrics import METRIC_UNITS, check_slo, summarize
from ..workload import Trace
from .checks import check_main_guard
from .spec import SweepPoint, SweepSpec

__all__ = ["sweep", "run_point", "SweepWarning", "SUMMARY_UNITS"]

#: Figures kept per point, ``{name: (units, long_name)}``: every key of
#: :func:`~llmsim_nb.results.metrics.summarize` with its units and definition
#: (:data:`~llmsim_nb.results.metrics.METRIC_UNITS`, so a figure added there is
#: kept by sweeps too), plus the simulator's host wall time.
SUMMARY_UNITS: dict[str, tuple[str, str]] = {
    **METRIC_UNITS,
    "wall_time": ("s", "host wall-clock time the simulator spent on the point"),
}


class SweepWarning(UserWarning):
    """Some points of a sweep failed; the Dataset records which and why."""


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

    try:
        config = SimConfig.from_json(config_json)
        ds = Simulator(config, trace).run()
        _write_atomic(ds, Path(path))
        return _ok(ds, path, slo_ttft=slo_ttft, slo_tpot=slo_tpot)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001  (reported, never swallowed; SystemExit too)
        return _failed(exc, traceback.format_exc())


def _ok(ds: xr.Dataset, path: str | Path, **slos: float | None) -> dict[str, Any]:
    summary = summarize(ds, **slos)
    summary["wall_time"] = float(ds["wall_time"].sum())
    return {"status": "ok", "error": "", "result_path": str(path), **summary}


def _failed(exc: BaseException, tb: str = "") -> dict[str, Any]:
    try:
        text = str(exc).strip().splitlines()
    except Exception:  # noqa: BLE001  (an exception whose __str__ fails)
        text = []
    error = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return {"status": "failed", "error": _printable(error), "traceback": _printable(tb),
            "result_path": ""}


def _printable(text: str) -> str:
    """``text`` without what netCDF cannot store (lone surrogates), so a point's
    error never stops the sweep Dataset from being written."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _write_atomic(ds: xr.Dataset, path: Path) -> None:
    """Write then rename, so a file at ``path`` is always a complete result."""
    import dask

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        # Inside a Dask worker xarray would guard the write with a distributed lock,
        # a round trip to the scheduler per variable (~0.25 s a file); each point
        # writes its own file, so a local lock is enough.
        with dask.config.set(scheduler="synchronous"):
            ds.to_netcdf(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _load_done(path: Path, slos: dict[str, float | None]) -> dict[str, Any] | None:
    """The summary of a point written by an earlier sweep (None if unreadable),
    under this sweep's SLOs (they are not part of the point's result file)."""
    try:
        ds = xr.load_dataset(path)  # in this process: no Dask lock involved
        return _ok(ds, path, **slos)
    except Exception:  # noqa: BLE001  e.g. truncated by a full disk: run the point again
        return None


def _local_client(n_workers: int):
    from distributed import Client, LocalCluster

    # One single-threaded process per worker: the simulator is pure Python and
    # holds the GIL, so threads would not run points in parallel.
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)
    return Client(cluster), cluster


def _run_dask(client, todo: list[tuple[SweepPoint, Path]], traces: dict, bar,
              results: dict[str, dict], slos: dict[str, float | None]) -> None:
    from distributed import as_completed

    shared = {label: client.scatter(traces[label], broadcast=True)
              for label in {p.trace_label for p, _ in todo}}
    futures = {client.submit(run_point, p.config.to_json(), shared[p.trace_label], str(path),
                             **slos, pure=False, key=f"llmsim-point-{p.key}-{os.urandom(4).hex()}"): p
               for p, path in todo}
    try:
        for future in as_completed(futures):
            point = futures[future]
            try:
                results[point.key] = future.result()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001  (e.g. the worker died: KilledWorker)
                results[point.key] = _failed(exc, traceback.format_exc())
            bar.update(1)
    except Exception as exc:  # noqa: BLE001  the cluster itself failed: record, keep the rest
        lost = _failed(exc, traceback.format_exc())
        for point in futures.values():
            results.setdefault(point.key, lost)
        _cancel(client, futures)
    except BaseException:
        _cancel(client, futures)  # interrupted: finished points are on disk already
        raise


def _cancel(client, futures) -> None:
    try:
        client.cancel(list(futures))
    except Exception:  # noqa: BLE001  a cluster that is gone has nothing left to cancel
        pass


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
    (out / "points").mkdir(parents=True, exist_ok=True)

    results: dict[str, dict[str, Any]] = {}
    todo: dict[str, tuple[SweepPoint, Path]] = {}
    for point in spec.points:
        path = spec.result_path(out, point)
        done = _load_done(path, slos) if resume and path.is_file() else None
        if done is not None:
            results[point.key] = {**done, "resumed": True}
        elif point.key not in todo:  # two points may share a config: run it once
            todo[point.key] = (point, path)

    from tqdm.auto import tqdm

    with tqdm(total=len(results) + len(todo), initial=len(results), unit="point",
              desc="sweep", disable=not progress) as bar:
        if client == "serial":
            for point, path in todo.values():
                results[point.key] = run_point(point.config.to_json(),
                                               spec.traces[point.trace_label], str(path),
                                               **slos)
                bar.update(1)
        elif todo:
            own = client is None
            cluster = None
            if own:
                check_main_guard()
                client, cluster = _local_client(n_workers or min(os.cpu_count() or 1, len(todo)))
            try:
                _run_dask(client, list(todo.values()), spec.traces, bar, results, slos)
            finally:
                if own:
                    client.close()
                    cluster.close()

    ds = _assemble(spec, results, out, slos)
    _write_atomic(ds, out / "sweep.nc")
    failed = [p for p in spec.points if results[p.key]["status"] != "ok"]
    if failed:
        lines = "; ".join(f"[{p.describe()}] {results[p.key]['error']}" for p in failed)
        warnings.warn(f"{len(failed)} of {len(spec.points)} sweep points failed (their "
                      f"figures are NaN; see ds.error and ds.config): {lines}", SweepWarning,
                      stacklevel=2)
    return ds


def _assemble(spec: SweepSpec, results: dict[str, dict[str, Any]], out: Path,
              slos: dict[str, float | None]) -> xr.Dataset:
    shape, dims = spec.shape, spec.dims
    numbers = {name: np.full(shape, math.nan) for name in SUMMARY_UNITS}
    text = {name: np.full(shape, "", dtype=object)
            for name in ("status", "error", "result_path", "config")}
    resumed = np.zeros(shape, dtype=bool)
    for p in spec.points:
        r = results[p.key]
        for name in numbers:
            if r["status"] == "ok":
                numbers[name][p.index] = r.get(name, math.nan)
        for name in ("status", "error", "result_path"):
            text[name][p.index] = r[name]
        text["config"][p.index] = p.config.to_json()
        resumed[p.index] = r.get("resumed", False)
    data: dict[str, Any] = {name: (dims, values, {"units": SUMMARY_UNITS[name][0],
                                                  "long_name": SUMMARY_UNITS[name][1]})
                            for name, values in numbers.items()}
    longs = {"status": "ok or failed", "error": "why the point failed (empty when ok)",
             "result_path": "netCDF file of the point's full results",
             "config": "the point's SimConfig as JSON"}
    for name, values in text.items():
        data[name] = (dims, values.astype(str), {"units": "1", "long_name": longs[name]})
    data["resumed"] = (dims, resumed, {"units": "1",
                                       "long_name": "loaded from an earlier sweep's file"})
    num_failed = sum(results[p.key]["status"] != "ok" for p in spec.points)
    attrs = {"base_config": spec.base.to_json(), "dims": json.dumps(list(dims)),
             "traces": json.dumps({str(k): t.source for k, t in spec.traces.items()}),
             "num_points": len(spec.points), "num_failed": num_failed,
             "out_dir": str(out), "slos": json.dumps(slos),
             "llmsim_nb_version": __version__}
    return xr.Dataset(data, coords=spec.coords(), attrs=attrs)
