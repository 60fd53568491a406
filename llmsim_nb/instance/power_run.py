"""Recording a run's energy: a :class:`Recorder` that also meters each iteration.

With ``power`` on, :func:`make_recorder` gives the instance a
:class:`PowerRecorder`: on every appended iteration it reads what the
instance's :class:`~.usage.Usage` grew by (busy seconds per device and PIM
unit, bytes per link class) and asks the :class:`~llmsim_nb.power.meter.PowerMeter`
for the iteration's energy per device. Without ``power`` it is the plain
``Recorder``, so such runs are unchanged to the bit. Request energy is each
iteration's energy shared by the tokens each request computed in it.
"""

from __future__ import annotations


import numpy as np

from ..models.ops import BatchShape
from ..power.cap import clock_fraction
from ..power.meter import PowerMeter
from ..power.pim_energy import command_energy
from ..power.presets import GPUPower, power_of
from ..results.dataset import IterationRecord, Recorder, variable

#: Per-iteration power variables (dims iteration[, device]).
POWER_ITERATION_VARS = ("device_energy", "device_power", "link_energy", "host_energy",
                        "iteration_energy")


def make_recorder(instance) -> Recorder:
    """The recorder of ``instance``'s iterations (metering energy with ``power`` on)."""
    if not instance.config.system.power:
        return Recorder(instance.op_names)
    return PowerRecorder(instance)


class PowerRecorder(Recorder):
    """A :class:`Recorder` that keeps each iteration's energy per device too."""

    def __init__(self, instance) -> None:
        super().__init__(instance.op_names)
        config = instance.config
        system = config.system
        power = power_of(config.hardware)
        cap = system.power_cap_w
        clock = clock_fraction(power, cap) if isinstance(power, GPUPower) else 1.0
        pim = system.pim_hardware if instance.pim is not None else None
        self.meter = PowerMeter(config.hardware, instance.stack, instance.topology.num_devices,
                                clock, cap, pim, pooled=system.pim_type == "pool")
        price = system.device_price_per_hour
        self.price_per_hour = (power.price_per_hour if price is None else price) \
            * self.meter.num_compute
        self.carbon_g_per_kwh = system.carbon_g_per_kwh
        self._instance = instance
        self._counter = self.meter.work
        n = instance.topology.num_devices
        # Per iteration, in growable buffers (no objects per iteration for the GC):
        # cumulative busy seconds and link bytes (the batches are kept as they are).
        self._busy, self._pim_busy, self._links = _Rows(n), _Rows(n), _Rows(2)
        self._extra: list[tuple[np.ndarray, np.ndarray, float]] = []
        self._batches: list[BatchShape] = []
        self._work_batches: list[BatchShape] = []
        self._cache: tuple[int, dict[str, np.ndarray]] | None = None

    def append(self, record: IterationRecord) -> None:
        """Record the iteration and what the power model needs of it: cumulative busy
        times and link bytes, the batch's work statistics (energies come in bulk, at
        :meth:`power_arrays`, which keeps this step cheap)."""
        super().append(record)
        usage = self._instance._usage
        self._busy.append(usage.device_busy)
        if self.meter.pim_power is not None:  # PIM busy time splits the PIM's energy
            self._pim_busy.append(usage.pim_busy)
        links = usage.link_bytes
        host = links.get("host", 0.0)
        self._links.append((host, sum(links.values()) - host))
        batch = record.plan.batch
        self._batches.append(batch)  # whose tokens share the iteration's energy
        # The work is what the device computed: the batch padded to a CUDA-graph
        # size where the serving stack pads it (statistics in bulk, at power_arrays).
        work = self._instance.parts.serving_stack.device_batch(batch)
        self._work_batches.append(work)
        if self._counter.has_extra:
            flops, nbytes, pim = self._counter.extra(work, record.expert_tokens)
            pim_j = 0.0 if self.meter.pim_power is None or self.meter.pim_spec is None else \
                command_energy(pim, self.meter.pim_spec, self.meter.pim_power)
            self._extra.append((flops, nbytes, pim_j))

    def power_arrays(self) -> dict[str, np.ndarray]:
        """The power variables of every iteration so far (and ``request_energy``)."""
        n = self.num_iterations
        if self._cache is not None and self._cache[0] == n:
            return {k: v.copy() for k, v in self._cache[1].items()}
        meter, ops = self.meter, self._counter.n_ops
        stats = self._counter.bulk_stats(self._work_batches)
        flops, nbytes = self._counter.work(stats)
        pim_j = np.zeros(n)
        if self._extra:
            flops = flops + np.array([e[0] for e in self._extra]).reshape(n, ops)
            nbytes = nbytes + np.array([e[1] for e in self._extra]).reshape(n, ops)
            pim_j = np.array([e[2] for e in self._extra])
        latency = self.column("latency")
        busy = _diff(self._busy.values())
        pim_busy = (_diff(self._pim_busy.values()) if meter.pim_power is not None
                    else np.zeros_like(busy))
        links = _diff(self._links.values())
        energy, link, host = meter.energy(flops, nbytes, self.op_latencies(), latency, busy,
                                          pim_j, pim_busy, links[:, 0], links[:, 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            power = energy / latency[:, None]
        total = energy.sum(axis=1) + link + host
        request = np.zeros(len(self._instance.scheduler.table))
        if n:
            ids = np.concatenate([b.request_ids for b in self._batches])
            tokens = [b.num_query_tokens.astype(np.float64) for b in self._batches]
            sums = np.array([t.sum() for t in tokens])
            scale = np.where(sums > 0, total / np.where(sums > 0, sums, 1.0), 0.0)
            weights = np.concatenate([t * f for t, f in zip(tokens, scale.tolist())])
            request += np.bincount(ids, weights=weights, minlength=len(request))[:len(request)]
        out = {"device_energy": energy, "device_power": power, "link_energy": link,
               "host_energy": host, "iteration_energy": total, "request_energy": request}
        self._cache = (n, out)
        return {k: v.copy() for k, v in out.items()}

    def extra_arrays(self) -> dict[str, np.ndarray]:
        return self.power_arrays()

    def iteration_variables(self) -> dict:
        out = super().iteration_variables()
        arrays = self.power_arrays()
        for name in POWER_ITERATION_VARS:
            dims = ("iteration", "device") if arrays[name].ndim == 2 else ("iteration",)
            out[name] = variable(name, dims, arrays[name])
        out["request_energy"] = variable("request_energy", ("request",),
                                         arrays["request_energy"])
        return out

    def attrs(self) -> dict[str, float]:
        """Dataset attributes the run totals need (``summarize``)."""
        return {"power_idle_w": self.meter.idle_w, "price_per_hour": self.price_per_hour,
                "carbon_g_per_kwh": self.carbon_g_per_kwh,
                "power_clock_fraction": self.meter.clock}


class _Rows:
    """A growable (rows x width) float64 buffer (amortised O(1) append)."""

    def __init__(self, width: int, capacity: int = 1024) -> None:
        self._data = np.empty((capacity, width))
        self.num_rows = 0

    def append(self, row) -> None:
        if self.num_rows == len(self._data):
            grown = np.empty((2 * len(self._data), self._data.shape[1]))
            grown[:self.num_rows] = self._data
            self._data = grown
        self._data[self.num_rows] = row
        self.num_rows += 1

    def values(self) -> np.ndarray:
        return self._data[:self.num_rows]


def _diff(cumulative: np.ndarray) -> np.ndarray:
    """Per-iteration increments of cumulative rows (iterations x width)."""
    return np.diff(cumulative, axis=0, prepend=np.zeros((1, cumulative.shape[1])))


def power_attrs(instance) -> dict[str, float]:
    recorder = getattr(instance, "_recorder", None)
    return recorder.attrs() if isinstance(recorder, PowerRecorder) else {}


__all__ = ["POWER_ITERATION_VARS", "PowerRecorder", "make_recorder", "power_attrs"]
