"""Files a run writes, compatible with the original LLMServingSim's outputs.

With ``--output PREFIX``:

- ``PREFIX-throughput.tsv``: columns ``time_duration  prompt_throughput
  generation_throughput``; one row per 0.5 s interval of simulated time, the
  prompt (prefill) and generation (decode) tokens of the iterations that ended
  in that interval, divided by its length (tokens/s), as the original prints.
- ``PREFIX-simulation-time.tsv``: wall time per component in milliseconds, the
  original's columns (``execution_engine graph_converter astra-sim scheduler
  total_simulation_time``). A single-device run has no graph conversion and no
  network simulation, so those two columns are 0.
- ``PREFIX-requests.csv``: one row per request with its timestamps (seconds).
- ``PREFIX.nc``: the whole Dataset as netCDF.

:func:`check_output_prefix` says, before anything is simulated, whether every
one of those files can be written; the writers write each file to a temporary
file in the same folder and move it into place with :func:`os.replace`, so a
failure never leaves a partial file. :func:`check_throughput_buckets` refuses
a throughput table that would need more than :data:`MAX_THROUGHPUT_BUCKETS`
rows (a trace whose arrivals are Unix-epoch times, say) before it is allocated.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: the checks run without xarray
    import xarray as xr

THROUGHPUT_INTERVAL = 0.5  # seconds, the original's bucket
#: Most rows of a throughput table: 10 million 0.5-s buckets are 58 days of
#: simulated time, ~240 MB of arrays and ~200 MB of TSV text.
MAX_THROUGHPUT_BUCKETS = 10_000_000
#: What ``write_outputs(ds, PREFIX)`` appends to PREFIX, in the order written.
OUTPUT_SUFFIXES = ("-throughput.tsv", "-simulation-time.tsv", "-requests.csv", ".nc")


def throughput_buckets(span: float, interval: float = THROUGHPUT_INTERVAL) -> int:
    """Rows of a throughput table over ``0 .. span`` seconds (at least one)."""
    return max(math.ceil(span / interval), 1)


def check_throughput_buckets(span: float, interval: float = THROUGHPUT_INTERVAL,
                             max_buckets: int = MAX_THROUGHPUT_BUCKETS) -> int:
    """The buckets of a table over ``0 .. span`` s; ``ValueError`` above ``max_buckets``.

    ``span`` is the simulated time the table covers (its last iteration's end,
    or, before a run, the last arrival: a lower bound).
    """
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) \
            or not math.isfinite(interval) or interval <= 0:
        raise ValueError(f"interval must be a finite number > 0 s, got {interval!r}")
    if not math.isfinite(span) or span / interval > max_buckets:
        count = "an unbounded number of" if not math.isfinite(span / interval) \
            else f"{math.ceil(span / interval):.3g}"
        raise ValueError(
            f"throughput over time: simulated time 0 .. {span:.6g} s in {interval:g} s "
            f"intervals needs {count} buckets, above the limit of {max_buckets:,}; shift the "
            f"trace's arrivals to start near 0 (are they Unix-epoch times?) or use a larger "
            f"interval")
    return throughput_buckets(span, interval)


def throughput_over_time(ds: xr.Dataset, interval: float = THROUGHPUT_INTERVAL,
                         max_buckets: int = MAX_THROUGHPUT_BUCKETS
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bucket prompt and generation tokens by iteration end time.

    Returns ``(bucket_end_times, prompt_tokens_per_s, generation_tokens_per_s)``.

    Raises
    ------
    ValueError
        If ``interval`` is not a finite number > 0, or the run's simulated time
        needs more than ``max_buckets`` buckets (checked before allocating).
    """
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) \
            or not math.isfinite(interval) or interval <= 0:
        raise ValueError(f"interval must be a finite number > 0 s, got {interval!r}")
    t_end = ds["t_end"].values
    if len(t_end) == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    check_throughput_buckets(float(np.max(t_end)), interval, max_buckets)
    # An iteration ending exactly on a boundary belongs to the bucket it closes.
    bucket = np.maximum(np.ceil(t_end / interval).astype(np.int64) - 1, 0)
    count = int(bucket.max()) + 1
    prompt = np.bincount(bucket, weights=ds["num_prefill_tokens"].values, minlength=count)
    decode = np.bincount(bucket, weights=ds["num_decode_tokens"].values, minlength=count)
    ends = interval * np.arange(1, count + 1)
    return ends, prompt / interval, decode / interval


# ---------------------------------------------------------------------- file contents
def _throughput_text(ds: xr.Dataset) -> str:
    ends, prompt, decode = throughput_over_time(ds)
    lines = ["time_duration\tprompt_throughput\tgeneration_throughput"]
    # Shortest exact decimal of each value (``:g``'s six digits made the times of
    # runs longer than 100,000 s collide and rounded the rates).
    fmt = lambda x: np.format_float_positional(x, trim="-")  # noqa: E731
    lines += [f"{fmt(e)}\t{fmt(p)}\t{fmt(d)}" for e, p, d in zip(ends, prompt, decode)]
    return "\n".join(lines) + "\n"


def _simulation_time_text(ds: xr.Dataset) -> str:
    wall = dict(zip(ds["component"].values.tolist(), (ds["wall_time"].values * 1e3).tolist()))
    engine, sched = wall.get("execution_engine", 0.0), wall.get("scheduler", 0.0)
    graph, network = wall.get("graph_converter", 0.0), wall.get("network", 0.0)
    total = engine + sched + graph + network
    return ("execution_engine\tgraph_converter\tastra-sim\tscheduler\ttotal_simulation_time\n"
            f"{engine:.3f}\t{graph:.3f}\t{network:.3f}\t{sched:.3f}\t{total:.3f}\n")


REQUEST_COLUMNS = ("arrival_at", "admitted_at", "first_token_at", "finished_at", "ttft",
                   "tpot", "e2e_latency", "queueing_delay", "num_prompt_tokens",
                   "num_output_tokens", "num_evictions")


def _requests_text(ds: xr.Dataset) -> str:
    cols = [ds[name].values for name in REQUEST_COLUMNS]
    lines = ["request_id," + ",".join(REQUEST_COLUMNS)]
    for i, rid in enumerate(ds["request"].values.tolist()):
        lines.append(f"{rid}," + ",".join(repr(c[i].item()) if c.dtype.kind == "f"
                                          else str(c[i]) for c in cols))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------- atomic writing
def _target(path: Path) -> Path:
    """Where writing ``path`` lands: through a symbolic link, at its target."""
    return Path(os.path.realpath(path)) if os.path.islink(path) else path


def _new_temp(folder: Path, suffix: str = "") -> Path:
    """A new, empty temporary file in ``folder``, created with the umask's mode (as a
    plain write would be); ``OSError`` if the folder does not take files."""
    while True:
        temp = folder / f".llmsim-{secrets.token_hex(6)}.tmp{suffix}"
        try:
            os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:  # pragma: no cover - 48 random bits collided
            continue
        return temp


def _stage(path: Path, write: Callable[[Path], None]) -> Path:
    """Write ``path``'s content to a temporary file beside it; return that file.

    ``OSError`` naming ``path`` if it cannot be written (and no temporary file
    is left behind).
    """
    temp = None
    try:
        temp = _new_temp(path.parent, path.suffix)
        write(temp)
    except BaseException as exc:
        if temp is not None:
            temp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OSError(exc.errno, f"cannot write output {path}: "
                                     f"{exc.strerror or exc}") from None
        raise
    return temp


def _write_atomically(path: str | Path, write: Callable[[Path], None]) -> Path:
    path = Path(path)
    check_output_paths([path])
    target = _target(path)
    os.replace(_stage(target, write), target)
    return path


def _text_writer(text: str) -> Callable[[Path], None]:
    return lambda temp: temp.write_text(text)


def _netcdf_writer(ds: xr.Dataset) -> Callable[[Path], None]:
    return lambda temp: ds.to_netcdf(temp)


# ---------------------------------------------------------------------- checks
def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def check_output_paths(paths: list[Path]) -> None:
    """``ValueError`` (one line, naming the path) unless every path can be written.

    A path's folder may be missing (it is created when writing), but its nearest
    existing ancestor must be a folder in which files can be created (probed with
    a temporary file, so read-only file systems count); the path must not be a
    folder or anything but a regular file; its name must not be too long.
    """
    probed: set[Path] = set()
    for path in paths:
        # os.path's tests, unlike pathlib's, answer False rather than raise for a
        # name the file system refuses (too long, say), which is reported below.
        target = _target(path)
        folder, missing = target.parent, []
        while not os.path.lexists(folder) and folder != folder.parent:
            missing.append(folder.name)
            folder = folder.parent
        if not os.path.isdir(folder):
            raise ValueError(f"cannot write output {path}: {folder} is not a folder")
        limit = _name_max(folder)
        for name in missing[::-1] + [target.name]:
            if len(os.fsencode(name)) > limit:
                raise ValueError(f"cannot write output {path}: the name {name[:40]!r}... is "
                                 f"longer than the {limit} bytes the file system allows")
        if os.path.lexists(target) and not os.path.isfile(target):
            kind = "a folder" if os.path.isdir(target) else "not a regular file"
            raise ValueError(f"cannot write output {path}: it exists and is {kind}")
        if folder not in probed:
            try:
                os.unlink(_new_temp(folder))
            except OSError as exc:
                raise ValueError(f"cannot write output {path}: folder {folder} is not "
                                 f"writable ({exc.strerror})") from None
            probed.add(folder)


def output_paths(prefix: str | Path) -> list[Path]:
    """The four files ``write_outputs(ds, prefix)`` writes."""
    if not isinstance(prefix, (str, os.PathLike)) or not str(prefix) \
            or str(prefix).endswith(("/", os.sep)):
        raise ValueError(f"output must be a file prefix such as results/run1 (the files get "
                         f"{', '.join(OUTPUT_SUFFIXES)} appended), got {prefix!r}")
    base = str(Path(prefix))
    return [Path(base + suffix) for suffix in OUTPUT_SUFFIXES]


def check_output_prefix(prefix: str | Path) -> list[Path]:
    """The output files of ``prefix``, after checking each can be written (see
    :func:`check_output_paths`); nothing is created. ``ValueError`` otherwise."""
    paths = output_paths(prefix)
    check_output_paths(paths)
    return paths


# ---------------------------------------------------------------------- writers
def write_throughput_tsv(ds: xr.Dataset, path: str | Path) -> Path:
    """The original's throughput report: prompt and generation tokens/s per 0.5-s bucket
    (TSV, exact decimals), written atomically; returns the path."""
    return _write_atomically(path, _text_writer(_throughput_text(ds)))


def write_simulation_time_tsv(ds: xr.Dataset, path: str | Path) -> Path:
    """The original's simulation-time report: host wall time per component (TSV),
    written atomically; returns the path."""
    return _write_atomically(path, _text_writer(_simulation_time_text(ds)))


def write_requests_csv(ds: xr.Dataset, path: str | Path) -> Path:
    """One row per request (arrival, admission, first token, finish, TTFT, TPOT, E2E,
    queueing, tokens; seconds), written atomically; returns the path."""
    return _write_atomically(path, _text_writer(_requests_text(ds)))


def write_netcdf(ds: xr.Dataset, path: str | Path) -> Path:
    """The whole Dataset as netCDF (attrs and units kept), written atomically; returns
    the path."""
    return _write_atomically(path, _netcdf_writer(ds))


def write_outputs(ds: xr.Dataset, prefix: str | Path) -> list[Path]:
    """Write all four files for ``prefix``; create its folder if needed.

    The paths are checked first (:func:`check_output_prefix`) and every file's
    content is made before any file is touched; each is written to a temporary
    file beside it, and only when all four are written are they moved into
    place, so a failure leaves none of them changed and no temporary file.
    """
    paths = check_output_prefix(prefix)
    writers = [_text_writer(_throughput_text(ds)), _text_writer(_simulation_time_text(ds)),
               _text_writer(_requests_text(ds)), _netcdf_writer(ds)]
    targets = [_target(p) for p in paths]
    staged: list[Path] = []
    try:
        for path, target in zip(paths, targets):
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot write output {path}: cannot create folder "
                                         f"{target.parent} ({exc.strerror})") from None
        for target, write in zip(targets, writers):
            staged.append(_stage(target, write))
    except BaseException:
        for temp in staged:
            temp.unlink(missing_ok=True)
        raise
    for temp, target in zip(staged, targets):
        os.replace(temp, target)
    return paths
