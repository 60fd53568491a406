"""Running a sweep's points: the machinery :func:`~.sweep.sweep` and
:func:`~.cluster_sweep.cluster_sweep` share.

A *point* is anything with a ``key`` (the hash naming its result file), an
``index`` (its place in the sweep Dataset), a ``trace_label`` (which of the
sweep's traces it serves) and ``describe()`` (one line naming it). A *task*
is a module-level function ``task(payload, trace, path, *, slo_ttft,
slo_tpot) -> dict`` that rebuilds the point from ``payload`` (JSON text, so a
point reaches a worker without pickling its objects), simulates it and
writes its Dataset to ``path`` (:func:`run_task` does the writing and the
catching).

:func:`run_points` loads the points an earlier sweep wrote, runs the others in
this process or on Dask workers (a ``LocalCluster`` it starts and stops, or
the user's client) and records every failure; :func:`summary_variables` lays
the per-point figures out on the sweep's dims; :func:`warn_failed` names the
points that failed.
"""

from __future__ import annotations

import logging
import math
import os
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..results.metrics import METRIC_UNITS, summarize
from .checks import check_main_guard

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


def run_task(simulate: Callable[[], xr.Dataset], path: str, **slos: float | None
             ) -> dict[str, Any]:
    """``simulate()``, its Dataset written to ``path``, its summary returned.

    Exceptions are caught and returned (status ``failed`` with the error and
    traceback) so one bad point never stops a sweep; anything that kills the
    worker itself is caught by the client. The Dataset must hold a
    ``wall_time`` variable (its sum is the point's host wall time).
    """
    try:
        ds = simulate()
        write_atomic(ds, Path(path))
        return point_summary(ds, path, **slos)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001  (reported, never swallowed; SystemExit too)
        return failed(exc, traceback.format_exc())


def point_summary(ds: xr.Dataset, path: str | Path, **slos: float | None) -> dict[str, Any]:
    """A finished point's record: status ``ok``, its file and every summary figure."""
    summary = summarize(ds, **slos)
    summary["wall_time"] = float(ds["wall_time"].sum())
    return {"status": "ok", "error": "", "result_path": str(path), **summary}


def failed(exc: BaseException, tb: str = "") -> dict[str, Any]:
    """A failed point's record: status ``failed``, the error on one line, the traceback."""
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


def write_atomic(ds: xr.Dataset, path: Path) -> None:
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
        return point_summary(ds, path, **slos)
    except Exception:  # noqa: BLE001  e.g. truncated by a full disk: run the point again
        return None


def _local_client(n_workers: int):
    from distributed import Client, LocalCluster

    # One single-threaded process per worker: the simulator is pure Python and
    # holds the GIL, so threads would not run points in parallel.
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)
    return Client(cluster), cluster


def _run_dask(client, todo: list[tuple[Any, Path]], traces: dict, bar,
              results: dict[str, dict], slos: dict[str, float | None], task: Callable,
              payload: Callable[[Any], str]) -> None:
    from distributed import as_completed

    shared = {label: client.scatter(traces[label], broadcast=True)
              for label in {p.trace_label for p, _ in todo}}
    futures = {client.submit(task, payload(p), shared[p.trace_label], str(path), **slos,
                             pure=False, key=f"llmsim-point-{p.key}-{os.urandom(4).hex()}"): p
               for p, path in todo}
    try:
        for future in as_completed(futures):
            point = futures[future]
            try:
                results[point.key] = future.result()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # noqa: BLE001  (e.g. the worker died: KilledWorker)
                results[point.key] = failed(exc, traceback.format_exc())
            bar.update(1)
    except Exception as exc:  # noqa: BLE001  the cluster itself failed: record, keep the rest
        lost = failed(exc, traceback.format_exc())
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


def run_points(points: Sequence[Any], traces: Mapping[Any, Any], out: Path, *,
               task: Callable, payload: Callable[[Any], str], client: Any,
               n_workers: int | None, resume: bool, slos: dict[str, float | None],
               progress: bool, desc: str = "sweep", caller: str = "sweep()"
               ) -> dict[str, dict[str, Any]]:
    """Every point's record (by key), loaded from ``out/points/<key>.nc`` or run.

    Parameters
    ----------
    points : list
        The sweep's points (see the module docstring); points that share a
        key run once.
    traces : mapping of label -> Trace
    out : Path
        The sweep's folder (``points/`` is made here).
    task, payload
        The task run per point, and what it is given to rebuild the point.
    client : distributed.Client, "serial" or None
        None starts a ``LocalCluster`` of ``n_workers`` processes (default one
        per CPU, at most one per point) and stops it after.
    resume : bool
        Load the points whose file exists instead of running them.
    slos : dict
        ``slo_ttft`` / ``slo_tpot`` for the summaries.
    progress : bool
        Show a progress bar titled ``desc``.
    caller : str
        Names the call in the unguarded-script error.

    Returns
    -------
    dict
        Key -> ``{"status", "error", "result_path", <figures>..., "resumed"}``.
    """
    (out / "points").mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    todo: dict[str, tuple[Any, Path]] = {}
    for point in points:
        path = out / "points" / f"{point.key}.nc"
        done = _load_done(path, slos) if resume and path.is_file() else None
        if done is not None:
            results[point.key] = {**done, "resumed": True}
        elif point.key not in todo:  # two points may share a config: run it once
            todo[point.key] = (point, path)

    from tqdm.auto import tqdm

    with tqdm(total=len(results) + len(todo), initial=len(results), unit="point",
              desc=desc, disable=not progress) as bar:
        if client == "serial":
            for point, path in todo.values():
                results[point.key] = task(payload(point), traces[point.trace_label], str(path),
                                          **slos)
                bar.update(1)
        elif todo:
            own = client is None
            cluster = None
            if own:
                check_main_guard(caller)
                client, cluster = _local_client(n_workers or min(os.cpu_count() or 1, len(todo)))
            try:
                _run_dask(client, list(todo.values()), traces, bar, results, slos, task, payload)
            finally:
                if own:
                    client.close()
                    cluster.close()
    return results


def summary_variables(points: Sequence[Any], results: dict[str, dict[str, Any]],
                      dims: tuple[str, ...], shape: tuple[int, ...],
                      described: Mapping[str, tuple[str, Callable[[Any], str]]]
                      ) -> dict[str, Any]:
    """The Dataset variables of a sweep's points, on ``dims``.

    Every figure of :data:`SUMMARY_UNITS` (NaN where a point failed),
    ``status``, ``error``, ``result_path``, ``resumed``, and per name of
    ``described`` (``{name: (long_name, text_of_point)}``) the text of each point.
    """
    numbers = {name: np.full(shape, math.nan) for name in SUMMARY_UNITS}
    text = {name: np.full(shape, "", dtype=object)
            for name in ("status", "error", "result_path", *described)}
    resumed = np.zeros(shape, dtype=bool)
    for p in points:
        r = results[p.key]
        for name in numbers:
            if r["status"] == "ok":
                numbers[name][p.index] = r.get(name, math.nan)
        for name in ("status", "error", "result_path"):
            text[name][p.index] = r[name]
        for name, (_, text_of) in described.items():
            text[name][p.index] = text_of(p)
        resumed[p.index] = r.get("resumed", False)
    data: dict[str, Any] = {name: (dims, values, {"units": SUMMARY_UNITS[name][0],
                                                  "long_name": SUMMARY_UNITS[name][1]})
                            for name, values in numbers.items()}
    longs = {"status": "ok or failed", "error": "why the point failed (empty when ok)",
             "result_path": "netCDF file of the point's full results",
             **{name: long for name, (long, _) in described.items()}}
    for name, values in text.items():
        data[name] = (dims, values.astype(str), {"units": "1", "long_name": longs[name]})
    data["resumed"] = (dims, resumed, {"units": "1",
                                       "long_name": "loaded from an earlier sweep's file"})
    return data


def warn_failed(points: Sequence[Any], results: dict[str, dict[str, Any]],
                stacklevel: int, see: str = "ds.error and ds.config") -> None:
    """A :class:`SweepWarning` naming every failed point with its error (none if all ran)."""
    bad = [p for p in points if results[p.key]["status"] != "ok"]
    if bad:
        lines = "; ".join(f"[{p.describe()}] {results[p.key]['error']}" for p in bad)
        warnings.warn(f"{len(bad)} of {len(points)} sweep points failed (their "
                      f"figures are NaN; see {see}): {lines}", SweepWarning,
                      stacklevel=stacklevel + 1)
