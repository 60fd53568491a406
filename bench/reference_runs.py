"""Saved comparison runs: prove a refactor leaves every Dataset bit-identical.

``python bench/reference_runs.py save DIR`` simulates a fixed set of
configurations (one device under every scheduling policy and KV mode, an
eviction-heavy run, tensor, pipeline and hybrid parallelism, request placement,
congestion, PIM beside the NPUs and in a pool, the ``gpu`` engine, the detailed
NPU, reuse off) both with ``run()`` and iteration by iteration with ``step()``,
and writes one netCDF file per run into DIR. ``compare DIR`` simulates them
again with the code as it is now and prints, per run, ``identical`` or the
variables that differ (and by how much). Wall-clock variables (``wall_time``)
and the version attribute are left out; everything else, values, coordinates
and attributes, must match bit for bit.

Run ``save`` on the commit before a structural change and ``compare`` after it.
The exit status is 1 when any run differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import xarray as xr

from llmsim_nb import SimConfig, Simulator, SimulationFinished
from llmsim_nb.workload import Trace, default_trace


def _decode_trace(num_requests: int, context: int, output: int = 3) -> Trace:
    return Trace(arrival_at=np.zeros(num_requests),
                 num_prompt_tokens=np.full(num_requests, context),
                 num_output_tokens=np.full(num_requests, output, dtype=np.int64),
                 source=f"{num_requests} x {context}")


def _head(n: int) -> Trace:
    t = default_trace()
    return Trace(arrival_at=t.arrival_at[:n], num_prompt_tokens=t.num_prompt_tokens[:n],
                 num_output_tokens=t.num_output_tokens[:n], source=f"default[:{n}]")


def _burst(n: int) -> Trace:
    """The first n requests of the packaged trace, arriving 100x faster (evictions)."""
    t = _head(n)
    return Trace(arrival_at=t.arrival_at * 0.01, num_prompt_tokens=t.num_prompt_tokens,
                 num_output_tokens=t.num_output_tokens, source=f"burst[:{n}]")


# name -> (flags, trace factory)
RUNS: dict[str, tuple[dict, object]] = {
    "single-orca": ({}, default_trace),
    "single-vllm": ({"scheduling": "vllm", "max_batch": 16}, default_trace),
    "single-chunked": ({"scheduling": "chunked", "max_num_batched_tokens": 512}, default_trace),
    "single-gen-max": ({"gen": True, "kv_manage": "max"}, default_trace),
    "evictions-gpt2": ({"model_name": "gpt2", "npu_mem": 0.3}, lambda: _burst(100)),
    "delay-gpt2": ({"model_name": "gpt2", "batch_delay": 0.01}, lambda: _head(40)),
    "reuse-off": ({"model_name": "gpt2", "reuse": False}, lambda: _head(40)),
    "tp4": ({"model_name": "gpt2", "npu_num": 4, "npu_group": 1}, lambda: _head(40)),
    "tp4-congestion": ({"model_name": "gpt2", "npu_num": 4, "congestion": True},
                       lambda: _head(30)),
    "pp4": ({"model_name": "gpt2", "npu_num": 4, "npu_group": 4, "parallel": "pipeline"},
            lambda: _head(40)),
    "tp4-evicting": ({"model_name": "gpt2", "npu_num": 4, "parallel": "tensor",
                      "npu_mem": 0.07}, lambda: _burst(100)),
    "pp2-evicting": ({"model_name": "gpt2", "npu_num": 2, "npu_group": 2, "npu_mem": 0.2},
                     lambda: _burst(100)),
    "hybrid-8x2": ({"model_name": "llama-7b", "npu_num": 8, "npu_group": 2}, lambda: _head(30)),
    "requests-placement": ({"model_name": "gpt2", "npu_num": 4,
                            "attention_placement": "requests"}, lambda: _head(30)),
    "pim-local": ({"model_name": "gpt2", "npu_num": 4, "npu_mem": 4, "gen": True,
                   "pim_channels": 4, "pim_type": "local", "sub_batch": True},
                  lambda: _decode_trace(64, 900)),
    "pim-local-serial": ({"model_name": "gpt2", "npu_num": 2, "npu_mem": 4, "gen": True,
                          "pim_channels": 4, "pim_type": "local"},
                         lambda: _decode_trace(32, 500)),
    "pim-pool": ({"model_name": "gpt2", "npu_num": 16, "npu_mem": 4, "gen": True,
                  "pim_type": "pool", "network": "pim_pool_32.json", "sub_batch": True},
                 lambda: _decode_trace(32, 300, output=2)),
    "gpu-a100": ({"model_name": "llama-7b", "hardware": "a100-80gb", "scheduling": "chunked",
                  "gpu_memory_utilization": 0.9}, default_trace),
    "gpu-tp2": ({"model_name": "llama-7b", "hardware": "h100-sxm", "npu_num": 2},
                lambda: _head(30)),
    "npu-detailed": ({"model_name": "gpt2", "npu_mode": "detailed"}, lambda: _head(20)),
}
IGNORED_VARIABLES = ("wall_time",)
IGNORED_ATTRS = ("llmsim_nb_version",)


def simulate(name: str) -> tuple[xr.Dataset, xr.Dataset]:
    """The run's whole Dataset from ``run()`` and the concatenated ``step()``s."""
    flags, make_trace = RUNS[name]
    config = SimConfig.from_flags(**flags)
    whole = Simulator(config, make_trace()).run()
    sim = Simulator(config, make_trace())
    # Step by step: every iteration's graph is built and run by the network
    # (run() adds chain graphs up without building them); the whole Dataset
    # after the last step is compared.
    while True:
        try:
            sim.step()
        except SimulationFinished:
            break
    stepped = sim.results()
    return _clean(whole), _clean(stepped)


def _clean(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.drop_vars([v for v in IGNORED_VARIABLES if v in ds])
    ds.attrs = {k: v for k, v in ds.attrs.items() if k not in IGNORED_ATTRS}
    return ds


def differences(expected: xr.Dataset, actual: xr.Dataset) -> list[str]:
    """What differs, one line each (empty: bit-identical)."""
    out = []
    if expected.attrs != actual.attrs:
        keys = sorted(k for k in set(expected.attrs) | set(actual.attrs)
                      if expected.attrs.get(k) != actual.attrs.get(k))
        out.append(f"attrs differ: {keys}")
    names = set(expected.variables) | set(actual.variables)
    for v in sorted(names):
        if v not in expected.variables or v not in actual.variables:
            out.append(f"{v}: only in {'saved' if v in expected.variables else 'new'}")
            continue
        a, b = expected[v], actual[v]
        if a.dims != b.dims or a.shape != b.shape:
            out.append(f"{v}: shape {a.dims}{a.shape} -> {b.dims}{b.shape}")
        elif not np.array_equal(a.values, b.values, equal_nan=a.dtype.kind == "f"):
            if a.dtype.kind == "f":
                worst = float(np.nanmax(np.abs(a.values - b.values)))
                out.append(f"{v}: values differ (largest |difference| {worst:.3g})")
            else:
                out.append(f"{v}: values differ")
        elif a.attrs != b.attrs:
            out.append(f"{v}: attrs differ")
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("save", "compare"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        print("usage: python bench/reference_runs.py save|compare DIR", file=sys.stderr)
        return 2
    mode, folder = argv[0], Path(argv[1])
    folder.mkdir(parents=True, exist_ok=True)
    bad = 0
    for name in RUNS:
        whole, stepped = simulate(name)
        for kind, ds in (("run", whole), ("step", stepped)):
            path = folder / f"{name}-{kind}.nc"
            if mode == "save":
                ds.to_netcdf(path)
                print(f"{name:20s} {kind:4s} saved ({ds.sizes.get('iteration', 0)} iterations)")
                continue
            with xr.open_dataset(path) as saved:
                diff = differences(saved.load(), _roundtrip(ds))
            bad += bool(diff)
            print(f"{name:20s} {kind:4s} " + ("identical" if not diff else "; ".join(diff)))
    if mode == "compare":
        print(f"{len(RUNS) * 2 - bad} of {len(RUNS) * 2} runs identical")
    return 1 if bad else 0


def _roundtrip(ds: xr.Dataset) -> xr.Dataset:
    """The Dataset as netCDF gives it back (so dtypes and attrs compare like for like)."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "new.nc"
        ds.to_netcdf(path)
        with xr.open_dataset(path) as back:
            return back.load()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
