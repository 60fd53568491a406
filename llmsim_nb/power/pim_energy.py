"""PIM energy: the DRAM commands an HBM-PIM issues, counted, times their energies.

The counts follow the data layouts the PIM engine times
(:mod:`llmsim_nb.engines.pim`), command for command: every all-bank command
(ACT, PRE, COMP, READRES) acts in all ``B`` banks of a channel; a GWRITE
writes an input chunk into the global buffer. Per command and bank, with the
energies of :class:`~llmsim_nb.power.presets.PIMPower`::

    ACT      act_j                          (the row activation, precharge included)
    PRE      pre_j
    COMP     macs * dt * 8 * column_j_per_bit + macs * mac_j
    READRES  dt * 8 * io_j_per_bit          (one result per bank)
    GWRITE   bytes * 8 * io_j_per_bit       (per command, not per bank)
    REF      rows_per_bank / 8192 ACTs in every bank (JEDEC: 8192 REFs per window)

Refresh runs whether the PIM computes or not, so it is background power with
the standby power: ``channels * (background_w_per_channel + ref_j / tREFI)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engines.pim import PIMSpec
from .presets import PIMPower

#: REF commands per refresh window (JEDEC HBM2: 8192 per tREFW).
REFS_PER_WINDOW = 8192


@dataclass(frozen=True, slots=True)
class PIMCommands:
    """Command counts, summed over channels (all-bank commands counted once each)."""

    act: float = 0.0
    pre: float = 0.0
    comp: float = 0.0
    readres: float = 0.0
    gwrite: float = 0.0
    gwrite_bytes: float = 0.0

    def __add__(self, other: "PIMCommands") -> "PIMCommands":
        return PIMCommands(*(a + b for a, b in zip(_astuple(self), _astuple(other))))


def _astuple(c: PIMCommands) -> tuple[float, ...]:
    return (c.act, c.pre, c.comp, c.readres, c.gwrite, c.gwrite_bytes)


def _ceil(a, b):
    return -(-np.asarray(a) // b)


def gemv_commands(spec: PIMSpec, m: int, k: int, n: int) -> PIMCommands:
    """Commands of ``m`` GEMVs of a ``k x n`` weight matrix (every channel works on
    its share of the output columns, in lockstep): ``PIMEngine.gemv_cycles``'s layout."""
    e, macs, dt = spec.row_elements, spec.macs_per_bank, spec.dtype_bytes
    tiles = int(_ceil(_ceil(n, spec.channels), spec.banks_per_channel))
    full, rem = divmod(int(k), e)
    chunks = full + (1 if rem else 0)
    comps = tiles * (full * int(_ceil(e, macs)) + (int(_ceil(rem, macs)) if rem else 0))
    per_channel_tiles = m * chunks * tiles
    ch = spec.channels
    return PIMCommands(act=ch * per_channel_tiles, pre=ch * per_channel_tiles,
                       comp=ch * m * comps, readres=ch * per_channel_tiles,
                       gwrite=ch * m * chunks, gwrite_bytes=ch * m * k * dt)


def attention_commands(spec: PIMSpec, q, kv, heads: int, kv_heads: int,
                       head_dim: int) -> tuple[PIMCommands, PIMCommands]:
    """(score, context) commands of requests with ``q`` query rows and ``kv``
    keys each (arrays; one channel per request): ``PIMEngine.attention_cycles``'s
    layouts."""
    q = np.asarray(q, dtype=np.float64)
    kv = np.asarray(kv, dtype=np.int64)
    e, banks, macs, dt = spec.row_elements, spec.banks_per_channel, spec.macs_per_bank, \
        spec.dtype_bytes
    g = int(_ceil(heads, kv_heads))
    seg = int(_ceil(head_dim, e))
    hd = int(_ceil(head_dim, seg))
    kvh = kv_heads * seg
    p = max(1, e // hd)
    tiles = _ceil(kv, banks).astype(np.float64)
    full, rem = divmod(kvh, p)
    act = comp = readres = gwrite = gbytes = 0.0
    for n, count in ((p, full), (rem, 1 if rem else 0)):
        if count:
            act += float((q * count * tiles).sum())
            comp += float((q * count * tiles).sum()) * n * g * int(_ceil(hd, macs))
            readres += float((q * count * tiles).sum()) * n * g
            gwrite += float(q.sum()) * count
            gbytes += float(q.sum()) * count * n * g * hd * dt
    score = PIMCommands(act, act, comp, readres, gwrite, gbytes)
    dtiles = int(_ceil(head_dim, banks))
    full_t, rem_t = np.divmod(kv, e)
    chunks = (full_t + (rem_t > 0)).astype(np.float64)
    heads_q = kv_heads * g * q
    c_act = float((heads_q * dtiles * chunks).sum())
    c_comp = float((heads_q * dtiles * (full_t * int(_ceil(e, macs))
                                        + _ceil(rem_t, macs))).sum())
    c_gwrite = float((heads_q * chunks).sum())
    c_bytes = float((heads_q * kv).sum()) * dt
    context = PIMCommands(c_act, c_act, c_comp, c_act, c_gwrite, c_bytes)
    return score, context


def command_energy(commands: PIMCommands, spec: PIMSpec, power: PIMPower) -> float:
    """Joules of ``commands`` (all-bank commands act in ``banks_per_channel`` banks)."""
    banks, dt = spec.banks_per_channel, spec.dtype_bytes
    comp_j = spec.macs_per_bank * (dt * 8 * power.column_j_per_bit + power.mac_j)
    per_bank = (commands.act * power.act_j + commands.pre * power.pre_j
                + commands.comp * comp_j + commands.readres * dt * 8 * power.io_j_per_bit)
    return banks * per_bank + commands.gwrite_bytes * 8 * power.io_j_per_bit


def background_w(spec: PIMSpec, power: PIMPower) -> float:
    """Standby plus refresh power of the whole PIM device, W."""
    rows_per_bank = spec.channel_bytes / (spec.banks_per_channel * spec.row_bytes)
    ref_j = rows_per_bank / REFS_PER_WINDOW * spec.banks_per_channel * power.act_j
    t_refi = spec.t_refi / spec.frequency
    return spec.channels * (power.background_w_per_channel + ref_j / t_refi)


__all__ = ["PIMCommands", "attention_commands", "background_w", "command_energy",
           "gemv_commands"]
