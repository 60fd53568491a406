"""The power model's overhead on a run's wall time (target: < 10%).

Runs the same configuration with ``power`` off and on, fastest of N runs each
(alternately; the machine's noise only ever adds time), and prints both and the
overhead; and, robust to a machine whose load drifts between runs, the power
model's own share of one run's wall time (its recording and computing, timed
inside the run).

    python bench/bench_power.py [--repeat 5] [--requests 100]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from llmsim_nb.config import SimConfig
from llmsim_nb.instance.simulator import Simulator
from llmsim_nb.workload.generators import default_trace

CASES = {
    "gpu (h100-sxm, llama-7b)": {"hardware": "h100-sxm", "model_name": "llama-7b"},
    "npu (npu-128x128, gpt3-6.7b)": {"hardware": "npu-128x128", "model_name": "gpt3-6.7b"},
    "npu+pim (local)": {"hardware": "npu-128x128", "model_name": "gpt3-6.7b",
                        "pim_type": "local"},
}


def once(flags: dict, trace) -> float:
    sim = Simulator(SimConfig.from_flags(**flags), trace)
    start = time.perf_counter()
    sim.advance()
    sim.result_arrays()
    return time.perf_counter() - start


def fastest(flags: dict, trace, repeat: int) -> tuple[float, float]:
    """Fastest off and on times, the two run alternately (so load drifts hit both)."""
    off = on = np.inf
    for _ in range(repeat):
        off = min(off, once(flags, trace))
        on = min(on, once({**flags, "power": "on"}, trace))
    return off, on


def own_share(flags: dict, trace) -> float:
    """The power model's own seconds (recording and computing, timed inside one run
    with power on) over that run's wall time: robust to a machine whose load drifts."""
    from llmsim_nb.instance.power_run import PowerRecorder
    from llmsim_nb.results.dataset import Recorder

    spent = [0.0]
    append, arrays, base = PowerRecorder.append, PowerRecorder.power_arrays, Recorder.append
    scratch: dict[int, Recorder] = {}  # per power recorder, a plain one timed on the side

    def timed_append(self, record):
        t0 = time.perf_counter()
        append(self, record)
        t1 = time.perf_counter()
        plain = scratch.setdefault(id(self), Recorder(self.op_names))
        base(plain, record)  # the plain recorder's share, on the side, to subtract it
        spent[0] += (t1 - t0) - (time.perf_counter() - t1)

    def timed_arrays(self):
        t0 = time.perf_counter()
        out = arrays(self)
        spent[0] += time.perf_counter() - t0
        return out

    PowerRecorder.append, PowerRecorder.power_arrays = timed_append, timed_arrays
    try:
        wall = once({**flags, "power": "on"}, trace)
    finally:
        PowerRecorder.append, PowerRecorder.power_arrays = append, arrays
    return spent[0] / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    trace = default_trace()[: args.requests]
    print(f"{'case':32s} {'off s':>9s} {'on s':>9s} {'overhead':>9s} {'own share':>10s}")
    for name, flags in CASES.items():
        off, on = fastest(flags, trace, args.repeat)
        share = min(own_share(flags, trace) for _ in range(args.repeat))
        print(f"{name:32s} {off:9.4f} {on:9.4f} {100 * (on / off - 1):8.1f}% "
              f"{100 * share:9.1f}%")


if __name__ == "__main__":
    main()
