"""Residual tables: how far an engine's op latencies are from measured ones, per op kind.

A :class:`ResidualTable` holds, for each op kind the calibration measured
(``gemm``, ``attention``, ``norm``, ``activation``, ``elementwise``,
``embedding``; see :func:`llmsim_nb.engines.scaled.residual_kind`), the
empirical distribution of ``log(measured / predicted)``: its quantiles at
fixed probabilities (``0, 0.05, ..., 1`` by default, so the minimum and the
maximum are kept and nothing is cut off). Between two stored quantiles the
quantile function is linear, which is what :meth:`ResidualTable.quantile`
and :meth:`ResidualTable.draw` use.

Tables come from :meth:`ResidualTable.from_calibration` (a
:class:`~llmsim_nb.fidelity.calibration.Calibration` and its measurements) or
from ``llmsim_nb/presets/residuals.yaml`` (:func:`get_residuals`), where each
entry names its source and the hardware presets it describes, so a run never
needs the measurement files.

Example
-------
>>> table = get_residuals("a100-vidur")
>>> table.quantile("gemm", 0.9)           # log(measured / predicted) at p90
>>> table.draw(np.random.default_rng(0), 16)["gemm"]   # 16 latency factors
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .._presets import preset_entries
from ..engines.scaled import RESIDUAL_KINDS

#: Probabilities at which :meth:`ResidualTable.from_samples` stores quantiles.
DEFAULT_PROBABILITIES = tuple(round(0.05 * i, 2) for i in range(21))


@dataclass(frozen=True)
class ResidualTable:
    """Per-op-kind quantiles of ``log(measured / predicted)``.

    Attributes
    ----------
    name : str
        What the table is called (a preset name, or ``"calibration"``).
    source : str
        Where its residuals come from (data, fit, in or out of sample).
    probabilities : tuple of float
        Strictly increasing, from exactly 0 to exactly 1.
    log_residuals : dict of str to tuple of float
        Per op kind (a subset of ``RESIDUAL_KINDS``), the non-decreasing
        quantiles at ``probabilities``. A kind missing here was not measured;
        a band built from the table leaves it unperturbed and says so.
    hardware : tuple of str
        Hardware presets whose op-level error this table describes.
    """

    name: str
    source: str
    probabilities: tuple[float, ...]
    log_residuals: dict[str, tuple[float, ...]] = field(hash=False)
    hardware: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        where = f"residual table {self.name!r}"
        p = np.asarray(self.probabilities, dtype=np.float64)
        if len(p) < 2 or p[0] != 0.0 or p[-1] != 1.0 or np.any(np.diff(p) <= 0):
            raise ValueError(f"{where}: probabilities must increase strictly from 0 to 1, "
                             f"got {list(self.probabilities)}")
        if not self.log_residuals:
            raise ValueError(f"{where}: log_residuals is empty; give at least one op kind "
                             f"of {list(RESIDUAL_KINDS)}")
        for kind, values in self.log_residuals.items():
            if kind not in RESIDUAL_KINDS:
                raise ValueError(f"{where}: op kind {kind!r} is not one of "
                                 f"{list(RESIDUAL_KINDS)}")
            q = np.asarray(values, dtype=np.float64)
            if q.shape != p.shape or not np.all(np.isfinite(q)) or np.any(np.diff(q) < 0):
                raise ValueError(f"{where}: {kind} needs {len(p)} finite non-decreasing "
                                 f"quantiles (one per probability), got {list(values)}")
        object.__setattr__(self, "probabilities", tuple(float(x) for x in p))
        object.__setattr__(self, "log_residuals", {
            k: tuple(float(x) for x in self.log_residuals[k])
            for k in RESIDUAL_KINDS if k in self.log_residuals})
        object.__setattr__(self, "hardware", tuple(self.hardware))

    # ------------------------------------------------------------ builders
    @classmethod
    def from_samples(cls, samples: dict, *, name: str, source: str,
                     hardware: tuple[str, ...] = (),
                     probabilities: tuple[float, ...] = DEFAULT_PROBABILITIES
                     ) -> "ResidualTable":
        """A table of the empirical quantiles of ``samples`` (kind -> log residuals).

        Raises
        ------
        ValueError
            A kind with no samples, or samples that are not finite.
        """
        quantiles = {}
        for kind, values in samples.items():
            values = np.asarray(values, dtype=np.float64)
            if values.size == 0 or not np.all(np.isfinite(values)):
                raise ValueError(f"residual table {name!r}: {kind} needs at least one finite "
                                 f"log residual, got {values.size} values")
            quantiles[kind] = tuple(np.quantile(values, probabilities))
        return cls(name, source, tuple(probabilities), quantiles, tuple(hardware))

    @classmethod
    def from_calibration(cls, calibration, measurements, *, name: str = "calibration",
                         source: str = "", hardware: tuple[str, ...] = ()
                         ) -> "ResidualTable":
        """The residuals of ``calibration`` grouped by the kind of each measurement.

        Parameters
        ----------
        calibration : Calibration
            From :func:`~llmsim_nb.fidelity.calibration.calibrate`.
        measurements : Measurements
            The measurements it was fitted on (same order as its residuals).
        """
        kinds = np.array([row.kind for row in measurements], dtype=object)
        if len(kinds) != len(calibration.log_residuals):
            raise ValueError(f"from_calibration: {len(kinds)} measurements but "
                             f"{len(calibration.log_residuals)} residuals; pass the "
                             "measurements the calibration was fitted on")
        samples = {k: calibration.log_residuals[kinds == k] for k in RESIDUAL_KINDS
                   if np.any(kinds == k)}
        return cls.from_samples(samples, name=name, hardware=hardware,
                                source=source or f"in-sample residuals of a calibration on "
                                                 f"{len(kinds)} measurements")

    @classmethod
    def zero(cls, kinds: tuple[str, ...] = RESIDUAL_KINDS) -> "ResidualTable":
        """A table whose every residual is 0: a band of it is the point prediction."""
        return cls("zero", "no error (every residual 0)", (0.0, 1.0),
                   {k: (0.0, 0.0) for k in kinds})

    # ------------------------------------------------------------ queries
    @property
    def kinds(self) -> tuple[str, ...]:
        """The op kinds the table has residuals for."""
        return tuple(self.log_residuals)

    def quantile(self, kind: str, probability: float) -> float:
        """``log(measured / predicted)`` of ``kind`` at ``probability`` (in [0, 1])."""
        if kind not in self.log_residuals:
            raise ValueError(f"residual table {self.name!r} has no op kind {kind!r}; it has "
                             f"{list(self.kinds)}")
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability!r}")
        return float(np.interp(probability, self.probabilities, self.log_residuals[kind]))

    def draw(self, rng: np.random.Generator, num_runs: int) -> dict[str, np.ndarray]:
        """``num_runs`` latency factors ``exp(residual)`` per kind, Latin-hypercube drawn.

        For each kind (in ``RESIDUAL_KINDS`` order, so a seed gives the same
        draws whatever the dict order was) the probabilities ``(perm + u) /
        num_runs`` put exactly one draw in each of ``num_runs`` equal strata of
        the distribution, and the permutation pairs the kinds at random: every
        kind's spread is covered evenly with few runs, while kinds stay
        independent of each other.
        """
        if isinstance(num_runs, bool) or not isinstance(num_runs, int) or num_runs < 1:
            raise ValueError(f"num_runs must be an integer >= 1, got {num_runs!r}")
        out = {}
        for kind in self.kinds:
            u = (rng.permutation(num_runs) + rng.random(num_runs)) / num_runs
            out[kind] = np.exp(np.interp(u, self.probabilities, self.log_residuals[kind]))
        return out

    def to_entry(self) -> dict:
        """The table as a ``presets/residuals.yaml`` entry (inverse of :func:`from_entry`)."""
        return {"source": self.source, "hardware": list(self.hardware),
                "probabilities": list(self.probabilities),
                "log_residuals": {k: [round(v, 4) for v in q]
                                  for k, q in self.log_residuals.items()}}


def from_entry(name: str, entry: dict) -> ResidualTable:
    """A :class:`ResidualTable` from a ``presets/residuals.yaml`` entry."""
    if not isinstance(entry, dict):
        raise ValueError(f"presets/residuals.yaml: {name!r} must be a mapping")
    missing = [k for k in ("source", "probabilities", "log_residuals") if k not in entry]
    if missing:
        raise ValueError(f"presets/residuals.yaml: {name!r} lacks {missing}")
    return ResidualTable(name, str(entry["source"]).strip(), tuple(entry["probabilities"]),
                         dict(entry["log_residuals"]), tuple(entry.get("hardware") or ()))


def residual_presets() -> dict[str, ResidualTable]:
    """Every table of ``presets/residuals.yaml``, by name."""
    return {name: from_entry(name, entry)
            for name, entry in preset_entries("residuals.yaml").items()}


def get_residuals(name: str) -> ResidualTable:
    """The stored table called ``name``; an unknown name lists the known ones."""
    tables = residual_presets()
    if name not in tables:
        raise ValueError(f"residuals={name!r} is not a known residual table; known: "
                         f"{sorted(tables)}")
    return tables[name]


def residuals_for_hardware(hardware: str) -> ResidualTable:
    """The stored table that describes the hardware preset ``hardware``.

    Raises
    ------
    ValueError
        No table names ``hardware`` (the message lists the tables and the
        presets each describes, so the caller can pick one explicitly).
    """
    tables = residual_presets()
    for table in tables.values():
        if hardware in table.hardware:
            return table
    known = "; ".join(f"{t.name}: {', '.join(t.hardware)}" for t in tables.values())
    raise ValueError(f"no residual table describes hardware={hardware!r} (tables: {known}); "
                     "pass residuals=<table name> to use one anyway")


def check_quantiles(quantiles) -> tuple[float, ...]:
    """Band quantiles as a tuple of floats, each in [0, 1], strictly increasing."""
    try:
        if isinstance(quantiles, (str, bytes)) or any(isinstance(q, bool) for q in quantiles):
            raise TypeError
        values = tuple(float(q) for q in quantiles)
    except (TypeError, ValueError):
        raise ValueError(f"quantiles must be numbers in [0, 1], got {quantiles!r}") from None
    if not values or any(not (math.isfinite(q) and 0.0 <= q <= 1.0) for q in values) or \
            any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"quantiles must be strictly increasing numbers in [0, 1], got "
                         f"{list(quantiles)}")
    return values


__all__ = ["DEFAULT_PROBABILITIES", "ResidualTable", "check_quantiles", "from_entry",
           "get_residuals", "residual_presets", "residuals_for_hardware"]
