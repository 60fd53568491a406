"""Simulated timelines as Chrome / Perfetto trace-event JSON.

:func:`to_trace_events` turns a Dataset into the "JSON Object Format" of the
Trace Event Format (``{"traceEvents": [...], "displayTimeUnit": "ms",
"otherData": {...}}``), which ui.perfetto.dev and chrome://tracing open (the
format Vidur and PyTorch's profiler write); :func:`write_trace_events` writes
it to a file (gzip-compressed when the name ends in ``.gz``).

Events: complete events (``ph: "X"``, ``ts`` and ``dur`` in microseconds,
``ts = t * 1e6`` of the Dataset's seconds, nothing rounded), counters
(``ph: "C"``) and metadata (``ph: "M"``) naming the processes and threads.

Track layout
------------
A STEP Dataset (``Simulator.step()``: dim ``node``), times from the
iteration's start:

- pid 1 ``iteration N``: one event spanning the iteration (its batch in args).
- pid ``device + 2`` ``NPU d`` (``GPU d``; ``PIM device d`` for a pooled PIM
  device), threads ``compute`` (unit 0), ``PIM unit u`` (unit u >= 1: a PIM
  beside the NPU or a pooled device's channel share), ``collectives``,
  ``send``, ``recv``, ``KV store to host``, ``KV load from host``. Each node
  is one event (``cat`` its node type; args node id, type, size, device,
  unit). Events that would overlap on a thread (two collectives of different
  groups at once) go on further threads ``collectives (2)``..., so no thread
  holds overlapping events.

A RUN Dataset (``Simulator.run()``: dims ``iteration``, ``request``), times
of the simulated clock:

- pid 1 ``Iterations``: thread ``iterations``, one event per iteration (args
  batch size, prefill / decode tokens, KV usage, evictions...), and counters
  ``batch`` (``size``), ``KV`` (``usage``), ``tokens in flight`` (``prefill``
  and ``decode`` tokens the running iteration computes), ``requests``
  (``queued``: arrived, not admitted; ``admitted``: admitted, not finished).
  Perfetto names a counter track "name arg": "batch size", "KV usage"...
- pid 2 ``Requests``: one thread per request (the first ``max_requests``;
  the process name and ``otherData`` say when capped) with ``queued``
  (arrival -> admission), ``prefill`` (admission -> first token) and
  ``decode`` (first token -> finish). A request unfinished when the run
  ends has its current phase end there, ``"complete": false`` in its args.

``otherData`` holds the Dataset's attrs (model, hardware, engine, layout,
config...) and what the trace shows.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from pathlib import Path

import numpy as np
import xarray as xr

from ..graph.nodes import NodeType
from .files import _stage, _target, check_output_paths

#: Request tracks shown by default (a trace viewer slows down with many more).
MAX_REQUEST_TRACKS = 1000

STEP_VARS = ("node_start_at", "node_end_at", "node_device", "node_unit", "node_size",
             "node_name", "node_type")
RUN_VARS = ("t_start", "t_end", "batch_size", "num_prefill_tokens", "num_decode_tokens",
            "kv_usage", "num_evicted", "arrival_at", "admitted_at", "first_token_at",
            "finished_at")
_US = 1e6
# Thread of each node type under its device, in display order (compute first).
_KIND = {NodeType.COMP.value: "compute", NodeType.COMM_COLL.value: "collectives",
         NodeType.COMM_SEND.value: "send", NodeType.COMM_RECV.value: "recv",
         NodeType.MEM_STORE.value: "KV store to host",
         NodeType.MEM_LOAD.value: "KV load from host"}
_ORDER = ("compute", "PIM unit", "collectives", "send", "recv", "KV store to host",
          "KV load from host")
_ITERATION_ARGS = ("batch_size", "num_prefill_tokens", "num_decode_tokens",
                   "num_generated_tokens", "kv_usage", "num_used_blocks", "num_evicted",
                   "num_reloaded", "num_finished")
_PHASES = ("queued", "prefill", "decode")


# ---------------------------------------------------------------------- checks
def _kind(ds) -> str:
    """``"step"`` or ``"run"``; a one-line ValueError naming what is missing."""
    if not isinstance(ds, xr.Dataset):
        raise TypeError(f"trace events are made from an xarray Dataset of Simulator.step() "
                        f"or Simulator.run(), got {type(ds).__name__}")
    names = set(ds.variables)
    if "node" in ds.dims or any(n in names for n in STEP_VARS):
        kind, needed = "step", STEP_VARS
    else:
        kind, needed = "run", RUN_VARS
    missing = [n for n in needed if n not in names]
    if kind == "run" and len(missing) == len(needed):
        raise ValueError(f"trace events need the Dataset of Simulator.step() (variables "
                         f"{', '.join(STEP_VARS)}) or of Simulator.run() (variables "
                         f"{', '.join(RUN_VARS)}); this one has none of them")
    if missing:
        raise ValueError(f"trace events: this looks like a Simulator.{kind}() Dataset but it "
                         f"lacks {', '.join(missing)}")
    units = {"the Dataset's time_units": ds.attrs.get("time_units", "s")}
    times = needed[:2] if kind == "step" else needed[:2] + needed[-4:]
    units.update((name, ds[name].attrs.get("units", "s")) for name in times)
    for name, unit in units.items():
        if unit != "s":
            raise ValueError(f"trace events: times must be in seconds, {name} is in {unit!r}")
    return kind


def _plain(value):
    """A JSON-safe Python value (NaN and inf become None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (np.ndarray, list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


# ---------------------------------------------------------------------- helpers
def _meta(pid: int, tid: int | None, label: str, sort: int | None = None) -> list[dict]:
    """Metadata events naming (and ordering) a process (tid None) or a thread."""
    which = "process" if tid is None else "thread"
    out = [{"ph": "M", "pid": pid, "tid": tid or 0, "name": f"{which}_name",
            "args": {"name": label}}]
    if sort is not None:
        out.append({"ph": "M", "pid": pid, "tid": tid or 0, "name": f"{which}_sort_index",
                    "args": {"sort_index": sort}})
    return out


def _complete(name: str, cat: str, pid: int, tid: int, start: float, end: float,
              args: dict) -> dict:
    return {"ph": "X", "name": name, "cat": cat, "pid": pid, "tid": tid, "ts": start * _US,
            "dur": max(end - start, 0.0) * _US, "args": args}


def _lanes(starts: list[float], ends: list[float]) -> list[int]:
    """Lane of each interval so that no lane holds two overlapping ones (greedy by
    start; touching intervals share a lane)."""
    lane_end: list[float] = []
    out = [0] * len(starts)
    for i in sorted(range(len(starts)), key=lambda i: (starts[i], ends[i])):
        for lane, end in enumerate(lane_end):
            if end <= starts[i]:
                break
        else:
            lane = len(lane_end)
            lane_end.append(-math.inf)
        lane_end[lane] = max(ends[i], starts[i])
        out[i] = lane
    return out


def _iteration_args(ds: xr.Dataset) -> list[dict]:
    """The args of every iteration's event (plain lists: indexing a DataArray per
    iteration would take most of the time of a long run)."""
    cols = {name: ds[name].values.tolist() for name in _ITERATION_ARGS if name in ds}
    cols.update((f"{name}_us", (ds[name].values.astype(float) * _US).tolist())
                for name in ("compute_latency", "host_transfer_latency") if name in ds)
    return [{k: _plain(v[i]) for k, v in cols.items()} for i in range(ds.sizes["iteration"])]


def _device_label(attrs: dict, device: int, units: set[int]) -> str:
    try:
        system = json.loads(attrs.get("config", "{}")).get("system", {})
        npus = int(system["npu_num"])
    except (TypeError, ValueError, KeyError, AttributeError):
        npus = None
    if (npus is not None and device >= npus) or (npus is None and 0 not in units):
        return f"PIM device {device}"
    return f"{'GPU' if 'gpu' in str(attrs.get('engine', '')).lower() else 'NPU'} {device}"


def _other(ds: xr.Dataset, shown: dict) -> dict:
    """``otherData``: what made the trace, the Dataset's attrs (config last), what it shows."""
    from .._version import __version__
    attrs = {str(k): _plain(v) for k, v in ds.attrs.items()}
    config = attrs.pop("config", None)
    attrs["dataset_time_units"] = attrs.pop("time_units", "s")
    return {"generator": f"llmsim_nb {__version__} (llmsim_nb.results.timeline)",
            "trace_time_unit": "us", **shown, **attrs,
            **({"config": config} if config is not None else {})}


def _sorted(meta: list[dict], events: list[dict]) -> list[dict]:
    return meta + sorted(events, key=lambda e: (e["ts"], e["pid"], e["tid"]))


# ---------------------------------------------------------------------- step
def _step_events(ds: xr.Dataset) -> tuple[list[dict], dict]:
    start = ds["node_start_at"].values.astype(float).tolist()
    end = ds["node_end_at"].values.astype(float).tolist()
    device = ds["node_device"].values.astype(int).tolist()
    unit = ds["node_unit"].values.astype(int).tolist()
    size = ds["node_size"].values.astype(float).tolist()
    names = [str(n) for n in ds["node_name"].values.tolist()]
    types = [str(t) for t in ds["node_type"].values.tolist()]
    ids = ds["node"].values.tolist() if "node" in ds.coords else list(range(len(start)))
    unknown = sorted(set(types) - set(_KIND))
    if unknown:
        raise ValueError(f"trace events: unknown node_type {unknown[0]!r} (known: "
                         f"{', '.join(_KIND)})")
    # Group nodes by (device, track), then split each group into lanes.
    groups: dict[tuple[int, str, int], list[int]] = {}
    comp = NodeType.COMP.value
    for i, t in enumerate(types):
        kind = "PIM unit" if t == comp and unit[i] else _KIND[t]
        groups.setdefault((device[i], kind, unit[i] if kind == "PIM unit" else 0), []).append(i)
    tracks: dict[tuple[int, str, int, int], list[int]] = {}
    for key, members in groups.items():
        lanes = _lanes([start[i] for i in members], [end[i] for i in members])
        for i, lane in zip(members, lanes):
            tracks.setdefault((*key, lane), []).append(i)
    meta, events = [], []
    iteration = int(ds["iteration"].values[0]) if ds.sizes.get("iteration", 0) else None
    if iteration is not None and "latency" in ds:
        meta += _meta(1, None, f"iteration {iteration}", 1) + _meta(1, 1, "iteration", 1)
        events.append(_complete(f"iteration {iteration}", "iteration", 1, 1, 0.0,
                                float(ds["latency"].values[0]), _iteration_args(ds)[0]))
    by_device: dict[int, list[tuple[int, str, int, int]]] = {}
    for key in tracks:
        by_device.setdefault(key[0], []).append(key)
    for dev in sorted(by_device):
        pid = dev + 2  # pid 1 is the iteration (and no pid 0: a viewer's idle process)
        units = {unit[i] for i, t in enumerate(types) if device[i] == dev and t == comp}
        meta += _meta(pid, None, _device_label(ds.attrs, dev, units), pid)
        keys = sorted(by_device[dev], key=lambda k: (_ORDER.index(k[1]), k[2], k[3]))
        for tid, (_, kind, u, lane) in enumerate(keys, start=1):
            label = f"PIM unit {u}" if kind == "PIM unit" else kind
            meta += _meta(pid, tid, label + (f" ({lane + 1})" if lane else ""), tid)
            for i in tracks[(dev, kind, u, lane)]:
                events.append(_complete(names[i], types[i], pid, tid, start[i], end[i], {
                    "node": _plain(ids[i]), "type": types[i], "size_bytes": size[i],
                    "device": device[i], "unit": unit[i]}))
    other = {"dataset_kind": "step", "iteration": iteration,
             "time_origin": "the iteration's start",
             "iteration_start_s": _plain(ds["t_start"].values[0]) if "t_start" in ds
             and ds.sizes.get("iteration", 0) else None,
             "num_nodes": len(start),
             "note": "symmetric devices may be simulated once, by a representative"}
    return _sorted(meta, events), other


# ---------------------------------------------------------------------- run
def _counter(name: str, pid: int, t: float, values: dict) -> dict:
    return {"ph": "C", "name": name, "pid": pid, "tid": 0, "ts": t * _US, "args": values}


def _request_points(ds: xr.Dataset) -> np.ndarray:
    """``(request, 4)`` arrival, admission, first token, finish; a missing
    intermediate time of a later-reached point takes that point's time."""
    pts = np.stack([ds[n].values.astype(float) for n in
                    ("arrival_at", "admitted_at", "first_token_at", "finished_at")], axis=1)
    for j in (2, 1):  # backward fill: finished on arrival, say, with no admission
        pts[:, j] = np.where(np.isnan(pts[:, j]), pts[:, j + 1], pts[:, j])
    return pts


def _run_events(ds: xr.Dataset, max_requests: int | None) -> tuple[list[dict], dict]:
    t_start = ds["t_start"].values.astype(float).tolist()
    t_end = ds["t_end"].values.astype(float).tolist()
    its = ds["iteration"].values.tolist() if "iteration" in ds.coords \
        else list(range(len(t_start)))
    n = len(t_start)
    meta = _meta(1, None, "Iterations", 1)
    events = []
    lanes = _lanes(t_start, t_end)
    for lane in sorted(set(lanes)):
        meta += _meta(1, lane + 1, "iterations" + (f" ({lane + 1})" if lane else ""), lane + 1)
    batch = ds["batch_size"].values.tolist()
    prefill = ds["num_prefill_tokens"].values.tolist()
    decode = ds["num_decode_tokens"].values.tolist()
    kv = ds["kv_usage"].values.astype(float).tolist()
    args = _iteration_args(ds)
    for i in range(n):
        events.append(_complete(f"iteration {its[i]}", "iteration", 1, lanes[i] + 1,
                                t_start[i], t_end[i], args[i]))
        events.append(_counter("batch", 1, t_start[i], {"size": batch[i]}))
        events.append(_counter("tokens in flight", 1, t_start[i],
                               {"prefill": prefill[i], "decode": decode[i]}))
        events.append(_counter("KV", 1, t_start[i], {"usage": _plain(kv[i])}))
        if i == n - 1 or t_start[i + 1] > t_end[i]:  # idle until the next iteration
            events.append(_counter("batch", 1, t_end[i], {"size": 0}))
            events.append(_counter("tokens in flight", 1, t_end[i], {"prefill": 0, "decode": 0}))
    pts = _request_points(ds)
    finite = pts[np.isfinite(pts)]
    run_end = max(t_end) if n else (float(finite.max()) if finite.size else 0.0)
    # Requests counter: exact at every arrival, admission and finish.
    arr, adm, fin = (np.sort(pts[:, j][np.isfinite(pts[:, j])]) for j in (0, 1, 3))
    times = np.unique(np.concatenate([arr, adm, fin]))
    if times.size:
        queued = np.searchsorted(arr, times, "right") - np.searchsorted(adm, times, "right")
        running = np.searchsorted(adm, times, "right") - np.searchsorted(fin, times, "right")
        for t, q, r in zip(times.tolist(), queued.tolist(), running.tolist()):
            events.append(_counter("requests", 1, t, {"queued": q, "admitted": r}))
    rids = ds["request"].values.tolist() if "request" in ds.coords \
        else list(range(pts.shape[0]))
    total = len(rids)
    shown = total if max_requests is None else min(total, max_requests)
    label = f"Requests (first {shown} of {total})" if shown < total else "Requests"
    meta += _meta(2, None, label, 2)
    if shown < total:
        meta.append({"ph": "M", "pid": 2, "tid": 0, "name": "process_labels",
                     "args": {"labels": f"showing the first {shown} of {total} requests"}})
    extra = {name: ds[name].values.tolist() for name in
             ("num_prompt_tokens", "num_output_tokens", "num_evictions") if name in ds}
    for r in range(shown):
        p = pts[r].tolist()
        if not math.isfinite(p[0]) or p[0] > run_end:
            continue  # not arrived by the end of the run
        tid = r + 1
        meta += _meta(2, tid, f"request {_plain(rids[r])}", tid)
        args = {"request": _plain(rids[r]), **{k: _plain(v[r]) for k, v in extra.items()}}
        for j, phase in enumerate(_PHASES):
            if math.isfinite(p[j + 1]):
                events.append(_complete(phase, "request", 2, tid, p[j], p[j + 1], args))
            else:  # the phase the request is in when the run ends
                events.append(_complete(phase, "request", 2, tid, p[j], max(run_end, p[j]),
                                        {**args, "complete": False}))
                break
    other = {"dataset_kind": "run", "time_origin": "the simulated clock's 0",
             "num_iterations": n, "num_requests": total, "requests_shown": shown,
             "requests_capped": shown < total, "max_requests": max_requests}
    return _sorted(meta, events), other


# ---------------------------------------------------------------------- public
def to_trace_events(ds: xr.Dataset, *, max_requests: int | None = MAX_REQUEST_TRACKS) -> dict:
    """The trace-event JSON object of a step or run Dataset (see the module's
    docstring for the tracks).

    Parameters
    ----------
    ds : xarray.Dataset
        What ``Simulator.step()`` (dim ``node``) or ``Simulator.run()``
        returns; times in seconds.
    max_requests : int or None
        Request tracks of a run Dataset: the first ``max_requests`` requests
        (None: all). ``otherData["requests_capped"]`` says whether some were left out.

    Returns
    -------
    dict
        ``{"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}``,
        ready for ``json.dumps`` (no NaN: a missing value is None).

    Raises
    ------
    ValueError
        One line naming what is missing if ``ds`` is neither kind, or its
        times are not in seconds. TypeError if it is not a Dataset.
    """
    if max_requests is not None and (isinstance(max_requests, bool) or
                                     not isinstance(max_requests, (int, np.integer))
                                     or max_requests < 0):
        raise ValueError(f"max_requests must be an integer >= 0 or None, got {max_requests!r}")
    kind = _kind(ds)
    events, other = _step_events(ds) if kind == "step" else _run_events(ds, max_requests)
    return {"traceEvents": events, "displayTimeUnit": "ms", "otherData": _other(ds, other)}


def write_trace_events(ds: xr.Dataset, path: str | os.PathLike, *,
                       max_requests: int | None = MAX_REQUEST_TRACKS) -> Path:
    """Write :func:`to_trace_events` of ``ds`` to ``path`` as JSON; return the path.

    A name ending in ``.gz`` is gzip-compressed (Perfetto and chrome://tracing
    open both). The Dataset and the path are checked before anything is
    written (:func:`~llmsim_nb.results.files.check_output_paths`: ValueError,
    one line); the file is written beside its target and moved into place
    with :func:`os.replace`, so a failure leaves no partial file. A missing
    folder is created.
    """
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(f"trace events path must be a file name such as run.json, "
                         f"got {path!r}")
    _kind(ds)
    path = Path(path)
    check_output_paths([path])
    text = json.dumps(to_trace_events(ds, max_requests=max_requests), allow_nan=False,
                      separators=(",", ":"))
    data = text.encode()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    target = _target(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write output {path}: cannot create folder "
                                 f"{target.parent} ({exc.strerror})") from None
    os.replace(_stage(target, lambda temp: temp.write_bytes(data)), target)
    return path


__all__ = ["MAX_REQUEST_TRACKS", "to_trace_events", "write_trace_events"]
