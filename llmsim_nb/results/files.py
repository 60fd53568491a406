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
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

THROUGHPUT_INTERVAL = 0.5  # seconds, the original's bucket


def throughput_over_time(ds: xr.Dataset, interval: float = THROUGHPUT_INTERVAL
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bucket prompt and generation tokens by iteration end time.

    Returns ``(bucket_end_times, prompt_tokens_per_s, generation_tokens_per_s)``.
    """
    if interval <= 0:
        raise ValueError(f"interval must be > 0 s, got {interval}")
    t_end = ds["t_end"].values
    if len(t_end) == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    # An iteration ending exactly on a boundary belongs to the bucket it closes.
    bucket = np.maximum(np.ceil(t_end / interval).astype(np.int64) - 1, 0)
    count = int(bucket.max()) + 1
    prompt = np.bincount(bucket, weights=ds["num_prefill_tokens"].values, minlength=count)
    decode = np.bincount(bucket, weights=ds["num_decode_tokens"].values, minlength=count)
    ends = interval * np.arange(1, count + 1)
    return ends, prompt / interval, decode / interval


def write_throughput_tsv(ds: xr.Dataset, path: str | Path) -> Path:
    ends, prompt, decode = throughput_over_time(ds)
    lines = ["time_duration\tprompt_throughput\tgeneration_throughput"]
    lines += [f"{e:g}\t{p:g}\t{d:g}" for e, p, d in zip(ends, prompt, decode)]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_simulation_time_tsv(ds: xr.Dataset, path: str | Path) -> Path:
    wall = dict(zip(ds["component"].values.tolist(), (ds["wall_time"].values * 1e3).tolist()))
    engine, sched = wall.get("execution_engine", 0.0), wall.get("scheduler", 0.0)
    graph, network = wall.get("graph_converter", 0.0), wall.get("network", 0.0)
    total = engine + sched + graph + network
    path = Path(path)
    path.write_text("execution_engine\tgraph_converter\tastra-sim\tscheduler\t"
                    "total_simulation_time\n"
                    f"{engine:.3f}\t{graph:.3f}\t{network:.3f}\t{sched:.3f}\t{total:.3f}\n")
    return path


REQUEST_COLUMNS = ("arrival_at", "admitted_at", "first_token_at", "finished_at", "ttft",
                   "tpot", "e2e_latency", "queueing_delay", "num_prompt_tokens",
                   "num_output_tokens", "num_evictions")


def write_requests_csv(ds: xr.Dataset, path: str | Path) -> Path:
    cols = [ds[name].values for name in REQUEST_COLUMNS]
    lines = ["request_id," + ",".join(REQUEST_COLUMNS)]
    for i, rid in enumerate(ds["request"].values.tolist()):
        lines.append(f"{rid}," + ",".join(repr(c[i].item()) if c.dtype.kind == "f"
                                          else str(c[i]) for c in cols))
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_netcdf(ds: xr.Dataset, path: str | Path) -> Path:
    path = Path(path)
    ds.to_netcdf(path)
    return path


def write_outputs(ds: xr.Dataset, prefix: str | Path) -> list[Path]:
    """Write all four files for ``prefix``; create its folder if needed."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    base = str(prefix)
    return [write_throughput_tsv(ds, base + "-throughput.tsv"),
            write_simulation_time_tsv(ds, base + "-simulation-time.tsv"),
            write_requests_csv(ds, base + "-requests.csv"),
            write_netcdf(ds, base + ".nc")]
