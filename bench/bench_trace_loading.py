"""Trace loading speed: ``load_trace`` on large generated files of every format.

Generates, into a temporary folder, a 1,000,000-row seed TSV, a 1,000,000-row
seed CSV, a 200,000-line JSONL and a 1,000,000-row Azure LLM inference trace
CSV with realistic values (a seeded ``numpy.random.Generator``: lognormal
prompt / output lengths, Poisson arrivals at about 10 requests/s), then times
:func:`llmsim_nb.workload.load_trace` on each: one untimed warm-up, then the
best of ``--runs`` (default 3). Prints seconds and rows per second.

Usage: ``python bench/bench_trace_loading.py [--runs N] [--rows N] [--seed S] [--keep DIR]``
(``--rows`` scales every file; the JSONL gets a fifth of them; ``--keep`` writes
the files into ``DIR`` and leaves them there).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from llmsim_nb.workload import load_trace


def _values(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    prompt = np.clip(np.rint(rng.lognormal(5.5, 1.1, n)), 1, 32_000).astype(np.int64)
    output = np.clip(np.rint(rng.lognormal(4.5, 1.0, n)), 0, 8_000).astype(np.int64)
    gaps = rng.exponential(1e8, n)  # ~10 requests/s, in nanoseconds
    arrival = np.cumsum(np.rint(gaps)).astype(np.int64)
    return prompt, output, arrival


def _write_seed(path: Path, sep: str, rng: np.random.Generator, n: int) -> None:
    p, o, a = (x.tolist() for x in _values(rng, n))
    body = [sep.join(("input_toks", "output_toks", "arrival_time_ns"))]
    body += [f"{x}{sep}{y}{sep}{z}" for x, y, z in zip(p, o, a)]
    path.write_text("\n".join(body) + "\n", encoding="utf-8")


def _write_jsonl(path: Path, rng: np.random.Generator, n: int) -> None:
    p, o, a = (x.tolist() for x in _values(rng, n))
    body = [json.dumps({"input_toks": x, "output_toks": y, "arrival_time_ns": z})
            for x, y, z in zip(p, o, a)]
    path.write_text("\n".join(body) + "\n", encoding="utf-8")


def _write_azure(path: Path, rng: np.random.Generator, n: int) -> None:
    p, o, a = _values(rng, n)
    # The published trace writes 7 fractional digits (100-ns resolution).
    start = np.datetime64("2023-11-16T18:15:46", "ns")
    stamps = (start + (a // 100 * 100).astype("timedelta64[ns]")).astype(str)
    body = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    body += [f"{t.replace('T', ' ')[:27]},{x},{y}"
             for t, x, y in zip(stamps.tolist(), p.tolist(), o.tolist())]
    path.write_text("\n".join(body) + "\n", encoding="utf-8")


def generate(folder: Path, rows: int, seed: int) -> dict[str, Path]:
    """Write the four benchmark files into ``folder``; return label -> path."""
    rng = np.random.default_rng(seed)
    files = {
        f"seed TSV ({rows:,} rows)": (folder / "seed.tsv", lambda p: _write_seed(p, "\t", rng, rows)),
        f"seed CSV ({rows:,} rows)": (folder / "seed.csv", lambda p: _write_seed(p, ",", rng, rows)),
        f"JSONL ({rows // 5:,} lines)": (folder / "seed.jsonl",
                                         lambda p: _write_jsonl(p, rng, rows // 5)),
        f"Azure CSV ({rows:,} rows)": (folder / "azure.csv", lambda p: _write_azure(p, rng, rows)),
    }
    out = {}
    for label, (path, write) in files.items():
        write(path)
        out[label] = path
    return out


def best_of(path: Path, runs: int) -> tuple[float, int]:
    """Best wall time of ``runs`` loads after one untimed warm-up, and the row count."""
    n = len(load_trace(path))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        load_trace(path)
        times.append(time.perf_counter() - start)
    return min(times), n


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--keep", metavar="DIR", help="write the files here and keep them")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_trace_") as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        files = generate(folder, args.rows, args.seed)
        print(f"{'file':28s} {'size':>9s} {'best':>9s} {'rows/s':>12s}")
        for label, path in files.items():
            seconds, n = best_of(path, args.runs)
            size = path.stat().st_size / 2**20
            print(f"{label:28s} {size:7.1f}MB {seconds:8.3f}s {n / seconds:12,.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
