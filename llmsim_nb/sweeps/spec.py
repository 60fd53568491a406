"""SweepSpec: which simulations a design-space sweep runs, checked before any runs.

A sweep is a base :class:`~llmsim_nb.config.SimConfig` and a trace, plus either
*axes* (flag name -> list of values; the cartesian product is run) or an
explicit list of *points* (each a mapping of flag names to values). Flag names
are the ``llmsim run`` ones (``npu_num``, ``scheduling``, ``npu_mem``...). A
trace may also be a mapping ``{label: Trace}``, which adds a ``trace`` axis
(e.g. the same requests at several arrival rates).

Everything here is pure and cheap: expanding the points, building and
validating every point's config, and naming each point's result file by a
hash of what determines its result (config, trace, package version), so a
re-run finds the points already done whatever order the axes are given in.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..config import FLAG_FIELDS, SimConfig, read_yaml_file
from ..workload import Trace, default_trace, load_trace
from .checks import TRACE_AXIS, check_axis_values, check_conversions


def apply_flags(config: SimConfig, flags: Mapping[str, Any]) -> SimConfig:
    """``config`` with ``flags`` (``llmsim run`` names) replaced; other fields kept.

    The flags go through :meth:`SimConfig.from_flags` (so they are read exactly
    as on the command line), then the fields that have no flag
    (``memory.host_bandwidth``...) are carried over from ``config``.
    """
    unknown = sorted(set(flags) - set(FLAG_FIELDS))
    if unknown:
        raise ValueError(f"unknown flag(s) {unknown}; known flags: {sorted(FLAG_FIELDS)}")
    merged = SimConfig.from_flags(**{**config.to_flags(), **flags})
    flagged = {(section, name) for section, name in FLAG_FIELDS.values()}
    sections = {}
    for section in ("scheduler", "memory", "system"):
        kept = {f.name: getattr(getattr(config, section), f.name)
                for f in dataclasses.fields(getattr(config, section))
                if (section, f.name) not in flagged}
        sections[section] = dataclasses.replace(getattr(merged, section), **kept)
    kept_top = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                if f.name not in sections and (None, f.name) not in flagged}
    return dataclasses.replace(merged, **sections, **kept_top)


def trace_fingerprint(trace: Trace) -> str:
    """A hash of a trace's requests (not its ``source`` text): their times and
    lengths and, where the trace has them, their content (what prefixes they
    share) and priorities; each part is tagged so none can pass for another."""
    h = hashlib.sha256()
    columns = [trace.arrival_at, trace.num_prompt_tokens, trace.num_output_tokens]
    content = trace.content
    if content is not None:
        columns += [b"content", content.starts, content.segment_ids, content.segment_lengths,
                    content.output_ids, content.cache_salts]
    priority = trace.priority
    if priority is not None:
        columns += [b"priority", priority]
    for column in columns:
        h.update(column if isinstance(column, bytes) else
                 np.ascontiguousarray(column).tobytes())
    return h.hexdigest()


def probe_trace(trace: Trace) -> Trace:
    """The few requests of ``trace`` that bind its feasibility checks.

    The simulator refuses a request that could never fit the KV cache; that
    depends on its prompt and output lengths only, so the longest prompt, the
    longest output and the longest prompt + output, all arriving at 0, find
    the same errors as the whole trace at a fraction of the cost.
    """
    prompts, outputs = trace.num_prompt_tokens, trace.num_output_tokens
    rows = sorted({int(np.argmax(prompts)), int(np.argmax(outputs)),
                   int(np.argmax(prompts + outputs))})
    return Trace(arrival_at=np.zeros(len(rows)), num_prompt_tokens=prompts[rows],
                 num_output_tokens=outputs[rows], source=f"probe of {trace.source}")


@dataclass(frozen=True)
class SweepPoint:
    """One simulation of a sweep.

    Attributes
    ----------
    index : tuple of int
        Position on each axis (one entry for a list of points).
    flags : dict
        The flags this point sets on top of the base config (plus ``trace``
        when traces are swept).
    config : SimConfig
    trace_label : str or None
        Key of the point's trace in the sweep's traces.
    key : str
        Hash of config, trace and package version: the result file's name.
    """

    index: tuple[int, ...]
    flags: dict[str, Any]
    config: SimConfig
    trace_label: str | None
    key: str

    def describe(self) -> str:
        """The point's flags, e.g. ``npu_num=4, scheduling='orca'``."""
        return ", ".join(f"{k}={v!r}" for k, v in self.flags.items())


def coordinate(values: list[Any]) -> np.ndarray:
    """An axis' values as a netCDF-friendly coordinate (bool, int, float or str)."""
    if all(isinstance(v, bool) for v in values):
        return np.array(values, dtype=bool)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.int64)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=np.float64)
    return np.array([str(v) for v in values], dtype=str)


class SweepSpec:
    """The points of a sweep, every one validated on construction.

    Parameters
    ----------
    base_config : SimConfig, mapping of flags, or None
        What every point starts from (a mapping is read with
        :meth:`SimConfig.from_flags`).
    trace : Trace, mapping of label -> Trace, or None
        None loads ``base_config.dataset`` (or the packaged trace) once, or each
        point's ``dataset`` when that is swept.
    axes : mapping of flag -> list
        Swept flags; the cartesian product is run, the first axis slowest.
    points : list of mappings, optional
        Instead of axes: the points to run, each a mapping of flags.
    validate : bool
        Build every point's simulator on a probe of its trace (see
        :func:`probe_trace`) so that any bad point is reported now. Invalid
        flag values are always reported.

    Raises
    ------
    ValueError
        Listing every invalid point with its flags and its error.
    """

    def __init__(self, base_config: SimConfig | Mapping[str, Any] | None = None,
                 trace: Trace | Mapping[str, Trace] | None = None, *,
                 axes: Mapping[str, Any] | None = None,
                 points: Sequence[Mapping[str, Any]] | None = None,
                 validate: bool = True) -> None:
        if base_config is None:
            base_config = SimConfig()
        elif isinstance(base_config, Mapping):
            base_config = SimConfig.from_flags(**base_config)
        elif not isinstance(base_config, SimConfig):
            raise ValueError(f"base_config must be a SimConfig or a mapping of flags, got "
                             f"{type(base_config).__name__}")
        self.base = base_config
        axes = dict(axes or {})
        if axes and points is not None:
            raise ValueError("give either axes (a cartesian product) or points, not both")
        self.traces = self._traces(trace, axes, points)
        if points is not None:
            self.axes: dict[str, list[Any]] = {}
            self.points_given = True
            raw = self._point_list(points)
        else:
            self.points_given = False
            if not axes:
                raise ValueError("a sweep needs at least one axis (e.g. npu_num=[1, 2]) or a "
                                 "list of points")
            for name in axes:
                if name != TRACE_AXIS and name not in FLAG_FIELDS:
                    raise ValueError(f"sweep axis {name!r} is not a flag; known flags: "
                                     f"{sorted(FLAG_FIELDS)}")
            self.axes = {name: check_axis_values(name, v) for name, v in axes.items()}
            if TRACE_AXIS in self.axes:
                raise ValueError(f"the {TRACE_AXIS!r} axis comes from passing a mapping of "
                                 f"traces, not from an axis")
            if len(self.traces) > 1:
                self.axes[TRACE_AXIS] = list(self.traces)
            raw = [(idx, dict(zip(self.axes, combo))) for idx, combo in zip(
                itertools.product(*(range(len(v)) for v in self.axes.values())),
                itertools.product(*self.axes.values()))]
        self.points = self._build(raw, validate)

    # -------------------------------------------------------------- traces
    def _traces(self, trace, axes, points) -> dict[str | None, Trace]:
        """Label -> Trace of every trace the points use (None: the one trace)."""
        swept_dataset = "dataset" in axes or any("dataset" in p for p in points or ())
        if isinstance(trace, Mapping):
            if not trace:
                raise ValueError("trace mapping is empty; give at least one Trace")
            for label, t in trace.items():
                if not isinstance(label, str) or not isinstance(t, Trace):
                    raise ValueError(f"trace mapping must map str labels to Trace, got "
                                     f"{label!r}: {type(t).__name__}")
            if swept_dataset:
                raise ValueError("sweep either 'dataset' or a mapping of traces, not both")
            return dict(trace)
        if trace is not None and not isinstance(trace, Trace):
            raise ValueError(f"trace must be a Trace, a mapping of labels to Trace or None, "
                             f"got {type(trace).__name__}")
        if trace is not None and swept_dataset:
            raise ValueError("'dataset' is swept but a trace was given; pass trace=None so "
                             "each point loads its dataset")
        if trace is not None:
            return {None: trace}
        if swept_dataset:
            return {}  # loaded per dataset in _build
        dataset = self.base.dataset
        return {None: load_trace(dataset) if dataset else default_trace()}

    def _point_list(self, points) -> list[tuple[tuple[int, ...], dict[str, Any]]]:
        if isinstance(points, (str, bytes, Mapping)) or not isinstance(points, Sequence):
            raise ValueError(f"points must be a list of mappings of flags, got {points!r}")
        if not points:
            raise ValueError("points is empty; give at least one point")
        raw = []
        labels = [k for k in self.traces if k is not None]
        for i, p in enumerate(points):
            if not isinstance(p, Mapping):
                raise ValueError(f"points[{i}] must be a mapping of flags, got {p!r}")
            p = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in p.items()}
            unknown = sorted(set(p) - set(FLAG_FIELDS) - {TRACE_AXIS})
            if unknown:
                raise ValueError(f"points[{i}] has unknown flag(s) {unknown}; known flags: "
                                 f"{sorted(FLAG_FIELDS)}")
            if labels and p.get(TRACE_AXIS) not in labels:
                raise ValueError(f"points[{i}] must name its trace with trace= one of "
                                 f"{labels}, got {p.get(TRACE_AXIS)!r}")
            if not labels and TRACE_AXIS in p:
                raise ValueError(f"points[{i}] names a trace but no mapping of traces was "
                                 f"given")
            raw.append(((i,), p))
        keys = [frozenset((k, repr(v)) for k, v in p.items()) for _, p in raw]
        if len(set(keys)) != len(keys):
            dup = next(i for i, k in enumerate(keys) if keys.index(k) != i)
            raise ValueError(f"points[{dup}] repeats an earlier point: {points[dup]!r}")
        return raw

    # -------------------------------------------------------------- points
    def _build(self, raw, validate: bool) -> list[SweepPoint]:
        from ..instance.simulator import Simulator  # the simulator imports nothing of the sweep

        built, errors = [], []
        fingerprints: dict[str | None, str] = {}
        probes: dict[str | None, Trace] = {}
        for index, flags in raw:
            where = ", ".join(f"{k}={v!r}" for k, v in flags.items())
            try:
                label = flags.get(TRACE_AXIS)
                config = apply_flags(self.base, {k: v for k, v in flags.items()
                                                 if k != TRACE_AXIS})
                if label is None and "dataset" in flags:
                    label = f"dataset:{config.dataset}"
                    if label not in self.traces:
                        self.traces[label] = load_trace(config.dataset)
                trace = self.traces[label]
                if label not in fingerprints:
                    fingerprints[label] = trace_fingerprint(trace)
                    probes[label] = probe_trace(trace)
                if validate:
                    Simulator(config, probes[label])
            except ValueError as exc:
                errors.append(f"[{where}] {exc}")
                continue
            key = hashlib.sha256("\n".join((config.to_json(), fingerprints[label],
                                            __version__)).encode()).hexdigest()[:20]
            built.append(SweepPoint(index, flags, config, label, key))
        check_conversions(built, self.axes, self.points_given)
        if errors:
            raise ValueError(f"{len(errors)} of {len(raw)} sweep points are invalid, nothing "
                             f"was run: " + "; ".join(errors))
        return built

    # ------------------------------------------------------------- shape
    @property
    def dims(self) -> tuple[str, ...]:
        return ("point",) if self.points_given else tuple(self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.points),) if self.points_given else tuple(
            len(v) for v in self.axes.values())

    def coords(self) -> dict[str, Any]:
        """Dataset coordinates: one per axis, or per-point flag values along ``point``."""
        if not self.points_given:
            return {name: coordinate(values) for name, values in self.axes.items()}
        coords: dict[str, Any] = {"point": np.arange(len(self.points))}
        names = list(dict.fromkeys(k for p in self.points for k in p.flags))
        for name in names:
            if name == TRACE_AXIS:
                values = [p.trace_label for p in self.points]
            else:
                section, field = FLAG_FIELDS[name]
                values = [getattr(p.config if section is None else
                                  getattr(p.config, section), field) for p in self.points]
            values = [("" if v is None else v) for v in values]
            coords[name] = ("point", coordinate(values))
        return coords

    def result_path(self, out_dir: Path, point: SweepPoint) -> Path:
        """Where ``point``'s summary is kept under ``out_dir`` (read back on resume)."""
        return out_dir / "points" / f"{point.key}.nc"


def read_sweep_yaml(path: str | Path) -> dict[str, Any]:
    """Read a ``llmsim sweep --config`` file.

    Keys: ``base`` (flags, as ``llmsim run --config``), ``axes`` (flag -> list)
    or ``points`` (list of flag mappings), and optionally ``out_dir``,
    ``workers``, ``scheduler_address`` (an existing Dask scheduler) and
    ``validate``. A file with a ``cluster`` key (a cluster description, as
    ``llmsim cluster --config`` files hold) instead of ``base`` sweeps cluster
    shapes (:func:`~.cluster_sweep.cluster_sweep`, its axes checked there);
    it is returned read, as a :class:`~llmsim_nb.cluster.ClusterConfig`.
    """
    p = Path(path)
    data = read_yaml_file(p, "sweep file")
    allowed = ("base", "axes", "points", "out_dir", "workers", "scheduler_address", "validate",
               "cluster")
    if not isinstance(data, dict):
        raise ValueError(f"sweep file {str(p)!r} must hold a mapping with keys {list(allowed)}")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValueError(f"sweep file {str(p)!r} has unknown key(s) {unknown}; allowed: "
                         f"{list(allowed)}")
    base = data.get("base") or {}
    if not isinstance(base, dict):
        raise ValueError(f"sweep file {str(p)!r}: base must be a mapping of flags, got {base!r}")
    if "axes" in data and not isinstance(data["axes"], dict):
        raise ValueError(f"sweep file {str(p)!r}: axes must be a mapping of flag -> list of "
                         f"values, got {data['axes']!r}")
    if "cluster" in data:
        from ..cluster.spec import cluster_config_from_dict

        given = [k for k in ("base", "points") if k in data]
        if given:
            raise ValueError(f"sweep file {str(p)!r}: a cluster sweep starts from 'cluster' and "
                             f"sweeps its axes; {given[0]!r} does not apply")
        if not data.get("axes"):
            raise ValueError(f"sweep file {str(p)!r}: a cluster sweep needs axes (e.g. "
                             f"decode_count: [1, 2])")
        data["cluster"] = cluster_config_from_dict(data["cluster"],
                                                   where=f"sweep file {str(p)!r}: cluster")
    for name in () if "cluster" in data else data.get("axes") or {}:
        if name not in FLAG_FIELDS:
            raise ValueError(f"sweep file {str(p)!r}: axes: {name!r} is not a flag; known flags: "
                             f"{sorted(FLAG_FIELDS)} (sweep trace files with 'dataset')")
    points = data.get("points")
    if "points" in data and (not isinstance(points, list)
                             or not all(isinstance(q, dict) for q in points)):
        raise ValueError(f"sweep file {str(p)!r}: points must be a list of mappings of flags, "
                         f"got {points!r}")
    for key in ("out_dir", "scheduler_address"):
        value = data.get(key)
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"sweep file {str(p)!r}: {key} must be a non-empty string, got "
                             f"{value!r}")
    if "validate" in data and not isinstance(data["validate"], bool):
        raise ValueError(f"sweep file {str(p)!r}: validate must be true or false, got "
                         f"{data['validate']!r}")
    workers = data.get("workers")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ValueError(f"sweep file {str(p)!r}: workers must be an integer >= 1, got "
                         f"{workers!r}")
    return data
