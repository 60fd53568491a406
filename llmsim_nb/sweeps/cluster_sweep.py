"""Sweeps over cluster shapes: many cluster runs on Dask, one xarray Dataset back.

>>> from llmsim_nb.sweeps.cluster_sweep import cluster_sweep
>>> ds = cluster_sweep(base, trace, router=["round_robin", "least_outstanding"],
...                    decode_count=[1, 2, 4], decode_max_batch=[64, 256])  # doctest: +SKIP
>>> ds.ttft_p99.sel(router="least_outstanding")                           # doctest: +SKIP

``base`` is a :class:`~llmsim_nb.cluster.ClusterConfig`; each axis is a list
of values for one of

- a cluster field: ``router``, ``decode_router``, ``router_staleness``,
  ``kv_link`` (the base's ``router_params`` / ``decode_router_params`` are kept
  whatever router is swept);
- ``<group>_count``: the number of instances of the group named ``<group>``;
- ``<group>_<flag>``: any ``llmsim run`` flag of that group's config, read as
  ``SimConfig.from_flags(**{**group.config.to_flags(), flag: value})``.

It is :func:`~llmsim_nb.sweeps.sweep.sweep`'s machinery
(:mod:`~llmsim_nb.sweeps.execution`) with a cluster per point: each point is
one ``Cluster(config)`` serving the whole trace in a Dask worker (or in this
process with ``serial=True``), sent there as the JSON of its description
(:meth:`ClusterConfig.to_dict`, rebuilt by
:func:`~llmsim_nb.cluster.spec.cluster_config_from_description`). Its full
Dataset is written to ``out_dir/points/<key>.nc``, ``key`` hashing the
description, the trace and the package version, so a later sweep over the
same ``out_dir`` loads it instead of running it again. Unknown axes and
invalid points are refused before anything runs; a point that fails while
running is recorded with its error while the others run on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .._version import __version__
from ..cluster.spec import ClusterConfig, cluster_config_from_description
from ..config import FLAG_FIELDS, SimConfig
from ..config.fields import did_you_mean
from ..results.metrics import check_slo
from ..workload import Trace, default_trace, load_trace
from .checks import _field_value, _same_setting, check_axis_values
from .execution import run_points, run_task, summary_variables, warn_failed, write_atomic
from .spec import coordinate, probe_trace, trace_fingerprint

__all__ = ["CLUSTER_AXES", "ClusterPoint", "cluster_points", "cluster_sweep",
           "run_cluster_point"]

#: The :class:`ClusterConfig` fields a cluster sweep may sweep.
CLUSTER_AXES = ("router", "decode_router", "router_staleness", "kv_link")


@dataclass(frozen=True)
class ClusterPoint:
    """One cluster run of a cluster sweep.

    Attributes
    ----------
    index : tuple of int
        Position on each axis.
    values : dict
        Axis name -> the value this point takes.
    config : ClusterConfig
        The cluster as a worker rebuilds it from ``description``.
    description : str
        ``config.to_dict()`` as JSON (sorted keys): what a worker is sent.
    key : str
        Hash of description, trace and package version: the result file's name.
    """

    index: tuple[int, ...]
    values: dict[str, Any]
    config: ClusterConfig
    description: str
    key: str
    trace_label: None = None  # a cluster sweep serves one trace

    def describe(self) -> str:
        """The point's axis values, e.g. ``router='random', decode_count=2``."""
        return ", ".join(f"{k}={v!r}" for k, v in self.values.items())


def _allowed(base: ClusterConfig) -> list[str]:
    return [*CLUSTER_AXES, *(f"{g.name}_count" for g in base.groups)]


def _resolve(base: ClusterConfig, name: str) -> tuple[str | None, str]:
    """``(group, target)`` of axis ``name``: ``(None, field)``, ``(group, "count")``
    or ``(group, flag)``; a one-line ValueError for anything else."""
    found = [(None, name)] if name in CLUSTER_AXES else []
    for g in base.groups:
        if name == f"{g.name}_count":
            found.append((g.name, "count"))
        elif name.startswith(f"{g.name}_") and name[len(g.name) + 1:] in FLAG_FIELDS:
            found.append((g.name, name[len(g.name) + 1:]))
    if len(found) > 1:
        raise ValueError(f"cluster sweep axis {name!r} is ambiguous: it names "
                         f"{[f'{g}.{t}' if g else t for g, t in found]}; rename a group")
    if not found:
        groups = [g.name for g in base.groups]
        candidates = _allowed(base) + [f"{g}_{f}" for g in groups for f in FLAG_FIELDS]
        raise ValueError(f"cluster sweep axis {name!r} is not a cluster field, group count or "
                         f"group flag; allowed: {_allowed(base)} or <group>_<flag> for any "
                         f"llmsim run flag of the groups {groups} (e.g. {groups[0]}_max_batch)"
                         f"{did_you_mean(name, candidates)}")
    if found[0][1] == "dataset":
        raise ValueError(f"cluster sweep axis {name!r}: every point serves the sweep's trace; "
                         f"sweep traces by calling cluster_sweep once per trace")
    return found[0]


def _exact(config: ClusterConfig, what: str) -> tuple[str, ClusterConfig]:
    """``config``'s description as JSON and the cluster a worker rebuilds from it,
    or a ValueError when that would not be ``config`` exactly."""
    if not isinstance(config.router, str) or not isinstance(config.decode_router, str):
        raise ValueError(f"{what}: its router is a callable; a cluster sweep sends each point "
                         f"to a worker as JSON, so give a registered router name")
    try:
        text = json.dumps(config.to_dict(), sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} cannot be written as JSON ({exc}); give router parameters "
                         f"that are numbers, strings, lists or mappings") from None
    rebuilt = cluster_config_from_description(text, where=what)
    if rebuilt != config:
        lost = [g.name for g, r in zip(config.groups, rebuilt.groups) if g != r]
        raise ValueError(f"{what}: the config of group(s) {lost} sets fields no llmsim run flag "
                         f"sets (they would be lost on the way to a worker); build each "
                         f"group's SimConfig with SimConfig.from_flags")
    return text, rebuilt


def _apply(base: ClusterConfig, axes: dict[str, tuple[str | None, str]],
           values: dict[str, Any]) -> ClusterConfig:
    """``base`` with every axis set to its value in ``values``."""
    groups = []
    for g in base.groups:
        mine = {target: values[name] for name, (group, target) in axes.items()
                if group == g.name}
        changes: dict[str, Any] = {}
        if "count" in mine:
            changes["count"] = mine.pop("count")
        if mine:
            try:
                changes["config"] = SimConfig.from_flags(**{**g.config.to_flags(), **mine})
            except (TypeError, ValueError) as exc:
                raise ValueError(f"instance group {g.name!r}: {exc}") from None
        groups.append(dataclasses.replace(g, **changes) if changes else g)
    fields = {target: values[name] for name, (group, target) in axes.items() if group is None}
    return dataclasses.replace(base, groups=tuple(groups), **fields)


def cluster_points(base: ClusterConfig, trace: Trace, axes: dict[str, Any], *,
                   validate: bool = True) -> list[ClusterPoint]:
    """Every point of a cluster sweep, each checked before any runs.

    Parameters
    ----------
    base : ClusterConfig
    trace : Trace
    axes : mapping of axis name -> list of values
        See the module docstring; the cartesian product, the first axis slowest.
    validate : bool
        Also build every point's :class:`~llmsim_nb.cluster.Cluster` and submit
        a probe of the trace to it (:func:`~.spec.probe_trace`), so that an
        instance that cannot be built or hold a request is reported now.

    Raises
    ------
    ValueError
        An unknown axis, a bad axis value, or every invalid point named with
        its values and error, in one line.
    """
    from ..cluster.cluster import Cluster

    if not axes:
        raise ValueError(f"a cluster sweep needs at least one axis, e.g. "
                         f"{base.groups[0].name}_count=[1, 2]; allowed: {_allowed(base)} or "
                         f"<group>_<flag>")
    resolved = {name: _resolve(base, name) for name in axes}
    lists = {name: check_axis_values(name, v) for name, v in axes.items()}
    _exact(base, "the base cluster")
    fingerprint, probe = trace_fingerprint(trace), probe_trace(trace)
    built, errors = [], []
    combos = itertools.product(*(range(len(v)) for v in lists.values()))
    for index in combos:
        values = {name: lists[name][i] for name, i in zip(lists, index)}
        where = ", ".join(f"{k}={v!r}" for k, v in values.items())
        try:
            text, config = _exact(_apply(base, resolved, values), "the point's cluster")
            if validate:
                Cluster(config).submit_trace(probe)
        except ValueError as exc:
            errors.append(f"[{where}] {exc}")
            continue
        key = hashlib.sha256("\n".join(("cluster", text, fingerprint, __version__)).encode()
                             ).hexdigest()[:20]
        built.append(ClusterPoint(tuple(index), values, config, text, key))
    _check_conversions(built, resolved, lists)
    if errors:
        total = len(built) + len(errors)
        raise ValueError(f"{len(errors)} of {total} cluster sweep points are invalid, nothing "
                         f"was run: " + "; ".join(errors))
    return built


def _check_conversions(built: list[ClusterPoint], resolved: dict[str, tuple[str | None, str]],
                       lists: dict[str, list[Any]]) -> None:
    """Refuse two values of a flag axis that are one setting once read (``"on"``, True)."""
    for axis, (name, (group, target)) in enumerate(resolved.items()):
        if group is None or target == "count":
            continue
        read: dict[int, Any] = {}
        for p in built:
            config = next(g.config for g in p.config.groups if g.name == group)
            read.setdefault(p.index[axis], _field_value(config, target))
        items = sorted(read.items())
        for n, (i, a) in enumerate(items):
            for j, b in items[n + 1:]:
                if _same_setting(a, b):
                    raise ValueError(f"cluster sweep axis {name!r} has the values "
                                     f"{lists[name][i]!r} and {lists[name][j]!r}, which are "
                                     f"the same setting once read ({target}={a!r}); give "
                                     f"each value once")


def run_cluster_point(description: str, trace: Trace, path: str, *,
                      slo_ttft: float | None = None,
                      slo_tpot: float | None = None) -> dict[str, Any]:
    """Run one point's cluster, write its Dataset to ``path``, return its summary.

    Runs in a worker process (see :func:`~.execution.run_task`: whatever the
    point raises is returned as a failed record). ``description`` is the JSON
    of :meth:`ClusterConfig.to_dict`. The Dataset written is the cluster's
    (:func:`~llmsim_nb.cluster.results.cluster_dataset`) plus ``wall_time``:
    the host seconds spent building and running the cluster.
    """
    from ..cluster.cluster import Cluster

    def simulate() -> xr.Dataset:
        start = time.perf_counter()
        cluster = Cluster(cluster_config_from_description(description))
        cluster.submit_trace(trace)
        ds = cluster.run()
        ds["wall_time"] = ((), time.perf_counter() - start, {
            "units": "s", "long_name": "host wall-clock time spent building and running the "
                                       "cluster"})
        return ds

    return run_task(simulate, path, slo_ttft=slo_ttft, slo_tpot=slo_tpot)


def _trace_of(base: ClusterConfig, trace: Trace | None) -> Trace:
    if isinstance(trace, Trace):
        return trace
    if trace is not None:
        raise ValueError(f"trace must be a Trace or None (the groups' dataset), got "
                         f"{type(trace).__name__}")
    datasets = {g.config.dataset for g in base.groups} - {None}
    if len(datasets) > 1:
        raise ValueError(f"the groups name different datasets {sorted(datasets)}; a cluster "
                         f"serves one trace: pass it as trace=")
    return load_trace(datasets.pop()) if datasets else default_trace()


def cluster_sweep(base: ClusterConfig, trace: Trace | None = None, *,
                  out_dir: str | Path | None = None, client: Any = None,
                  workers: int | None = None, serial: bool = False, resume: bool = True,
                  slo_ttft: float | None = None, slo_tpot: float | None = None,
                  progress: bool = True, validate: bool = True,
                  **axes: Any) -> xr.Dataset:
    """Run a sweep over cluster shapes and return one Dataset with a dim per axis.

    Parameters
    ----------
    base : ClusterConfig
        What every point starts from. Its router must be a registered name and
        each group's config what its flags build (a point travels as JSON).
    trace : Trace, optional
        The requests every point's cluster serves; None loads the groups'
        ``dataset`` (or the packaged trace).
    out_dir : path, optional
        Where ``points/<key>.nc`` (each point's full cluster Dataset) and
        ``sweep.nc`` (the returned Dataset) are written; default
        ``llmsim-cluster-sweep``.
    client : distributed.Client, optional
        Run the points on its cluster (it is left running); None starts a
        ``LocalCluster`` of ``workers`` processes and stops it after.
    workers : int, optional
        Worker processes of that LocalCluster; default ``min(cpus, points)``.
    serial : bool
        Run every point in this process, one after another (no Dask).
    resume : bool
        Load points whose result file exists instead of running them.
    slo_ttft, slo_tpot : float, optional
        Service-level objectives in seconds for each point's ``goodput`` /
        ``goodput_fraction`` (not part of the point files: a resumed point is
        summarized under the SLOs given now).
    progress : bool
        Show a progress bar.
    validate : bool
        Build every point's cluster on a probe of the trace before running any
        (every point is always built as a ClusterConfig).
    **axes : list
        Axis name -> values (see the module docstring), e.g.
        ``router=["round_robin", "least_kv"]``, ``decode_count=[1, 2]``,
        ``decode_max_batch=[64, 256]``.

    Returns
    -------
    xarray.Dataset
        Dims: the axes, in order, their values the coordinates. Per point:
        every figure of :data:`~.execution.SUMMARY_UNITS` (NaN where it
        failed), ``num_instances``, ``status``, ``error``, ``result_path``,
        ``cluster`` (its description as JSON) and ``resumed``. Attrs:
        ``base_cluster`` (JSON), ``trace_source``, ``llmsim_nb_version``,
        ``dims``, ``num_points``, ``num_failed``, ``out_dir``, ``slos``.

    Raises
    ------
    ValueError
        An unknown axis (naming what is allowed), a bad value, an invalid
        point (naming it), bad options; before anything runs.

    Warns
    -----
    SweepWarning
        When points failed while running, naming each with its error.
    """
    if not isinstance(base, ClusterConfig):
        raise ValueError(f"cluster_sweep needs a ClusterConfig base, got {type(base).__name__}")
    if isinstance(client, str) or (serial and client is not None):
        raise ValueError(f"client={client!r}: give a distributed.Client or None (serial=True "
                         f"runs in this process)")
    if workers is not None and (client is not None or serial):
        raise ValueError("workers sizes the LocalCluster the sweep starts; a client brings "
                         "its own workers and serial=True uses none, so give one or the other")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    slos = {"slo_ttft": check_slo("slo_ttft", slo_ttft),
            "slo_tpot": check_slo("slo_tpot", slo_tpot)}
    trace = _trace_of(base, trace)
    points = cluster_points(base, trace, axes, validate=validate)
    out = Path("llmsim-cluster-sweep" if out_dir is None else out_dir).resolve()
    results = run_points(points, {None: trace}, out, task=run_cluster_point,
                         payload=lambda p: p.description,
                         client="serial" if serial else client, n_workers=workers,
                         resume=resume, slos=slos, progress=progress, desc="cluster sweep",
                         caller="cluster_sweep()")
    lists = {name: check_axis_values(name, values) for name, values in axes.items()}
    dims, shape = tuple(lists), tuple(len(v) for v in lists.values())
    data = summary_variables(points, results, dims, shape, {
        "cluster": ("the point's cluster description (ClusterConfig.to_dict) as JSON",
                    lambda p: p.description)})
    counts = np.zeros(shape, dtype=np.int64)
    for p in points:
        counts[p.index] = p.config.num_instances
    data["num_instances"] = (dims, counts, {"units": "1",
                                            "long_name": "instances in the point's cluster"})
    coords = {name: coordinate(values) for name, values in lists.items()}
    attrs = {"base_cluster": _exact(base, "the base cluster")[0],
             "dims": json.dumps(list(dims)),
             "trace_source": trace.source or "", "num_points": len(points),
             "num_failed": sum(results[p.key]["status"] != "ok" for p in points),
             "out_dir": str(out), "slos": json.dumps(slos), "llmsim_nb_version": __version__}
    ds = xr.Dataset(data, coords=coords, attrs=attrs)
    write_atomic(ds, out / "sweep.nc")
    warn_failed(points, results, stacklevel=2, see="ds.error and ds.cluster")
    return ds
