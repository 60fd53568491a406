"""Regenerate the workload data files shipped in ``llmsim_nb/data``.

Writes

* ``sharegpt_lengths.csv`` -- all 100 (prompt, output) pairs of
  ``share-gpt-req100-rate10.tsv`` in file order;
* ``alpaca_lengths.csv`` -- histogram ``num_prompt_tokens,count`` of the
  ``input_toks`` pooled over the six ``alpaca-bs256-*.tsv`` traces (their
  outputs are all 1 token, so no output column is derived);
* ``default_trace.tsv`` -- ``synthetic_trace(default_rng(0), 100, 10.0)`` with
  the ShareGPT-like tables just written.

Usage (from the repository root; traces are read from ``../shared/data/traces``)::

    python bench/derive_length_tables.py [--traces DIR]

Deterministic: rerunning reproduces identical files.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "llmsim_nb" / "data"
DEFAULT_TRACES = REPO.parent / "shared" / "data" / "traces"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=Path, default=DEFAULT_TRACES)
    args = parser.parse_args()

    from llmsim_nb.workload import load_trace, save_trace

    share = load_trace(args.traces / "share-gpt-req100-rate10.tsv")
    lines = [
        "# Derived by bench/derive_length_tables.py from share-gpt-req100-rate10.tsv",
        "num_prompt_tokens,num_output_tokens",
    ]
    lines += [
        f"{p},{o}" for p, o in zip(share.num_prompt_tokens.tolist(), share.num_output_tokens.tolist())
    ]
    (DATA / "sharegpt_lengths.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    files = sorted(args.traces.glob("alpaca-bs256-*.tsv"))
    if not files:
        raise SystemExit(f"no alpaca-bs256-*.tsv files in {args.traces}")
    counts: Counter[int] = Counter()
    for f in files:
        counts.update(load_trace(f).num_prompt_tokens.tolist())
    lines = [
        "# Derived by bench/derive_length_tables.py: input_toks pooled over "
        + ", ".join(f.name for f in files),
        "# (their output_toks are all 1, so no output lengths are derived)",
        "num_prompt_tokens,count",
    ]
    lines += [f"{v},{c}" for v, c in sorted(counts.items())]
    (DATA / "alpaca_lengths.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")

    # Import after the tables are written; clear caches in case of reuse.
    from llmsim_nb.workload import generators, lengths

    lengths.sharegpt_like.cache_clear()
    trace = generators.synthetic_trace(
        np.random.default_rng(generators.DEFAULT_TRACE_SEED),
        generators.DEFAULT_TRACE_REQUESTS,
        generators.DEFAULT_TRACE_RATE,
    )
    save_trace(trace, DATA / "default_trace.tsv")
    generators.default_trace.cache_clear()
    print(f"wrote {DATA}/sharegpt_lengths.csv, alpaca_lengths.csv, default_trace.tsv")


if __name__ == "__main__":
    main()
