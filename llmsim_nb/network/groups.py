"""Collective groups: which sets of devices a collective may run over.

A collective runs over a *group* of devices that is a Cartesian product of
coordinate sets, one per dimension: in every dimension the group uses either
one coordinate (the dimension is not spanned), all of them (a full row), or
-- on ``FullyConnected`` and ``Switch`` dimensions only, where any subset of a
row is still directly connected -- a subset of them. :func:`group_shape`
checks that and returns the spanned dimensions, which is all the cost model
needs (:mod:`llmsim_nb.network.collectives`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .topology import Topology


@dataclass(frozen=True, slots=True)
class GroupShape:
    """A validated group: its members and the dimensions it spans.

    Attributes
    ----------
    members : tuple of int
        Sorted device ids.
    spanned : tuple of (int, int)
        ``(dim, p)`` for every dimension with ``p > 1`` members, ascending.
    """

    members: tuple[int, ...]
    spanned: tuple[tuple[int, int], ...]


def group_shape(topology: Topology, group) -> GroupShape:
    """Validate ``group`` against ``topology`` (see the module docstring).

    Raises
    ------
    ValueError
        Empty group, repeated or out-of-range devices, a group that is not a
        Cartesian product of per-dimension coordinate sets, or a partial row
        of a Ring dimension.
    """
    members = tuple(sorted(int(g) for g in group))
    if not members:
        raise ValueError("collective group is empty; it needs at least one device")
    n = topology.num_devices
    if members[0] < 0 or members[-1] >= n:
        bad = [g for g in members if not 0 <= g < n]
        raise ValueError(f"collective group has devices {bad} outside topology "
                         f"{topology.name!r} (0..{n - 1})")
    if len(set(members)) != len(members):
        raise ValueError(f"collective group {members} repeats devices")
    spanned, product = [], 1
    for i, (d, stride) in enumerate(zip(topology.dimensions, topology.strides)):
        coords = {(g // stride) % d.size for g in members}
        p = len(coords)
        product *= p
        if p == 1:
            continue
        if p < d.size and d.kind == "Ring":
            raise ValueError(f"collective group {_short(members)} uses {p} of the {d.size} "
                             f"devices of Ring dimension {i}; a group must span whole rings")
        spanned.append((i, p))
    if product != len(members):
        raise ValueError(f"collective group {_short(members)} is not aligned to the topology's "
                         f"dimensions: it must be a full product of per-dimension coordinate "
                         f"sets (e.g. whole rows), but it has {len(members)} of the {product} "
                         f"devices such a product would hold")
    return GroupShape(members, tuple(spanned))


def _short(members: tuple[int, ...]) -> str:
    return str(members) if len(members) <= 8 else f"({members[0]}, {members[1]}, ..., {members[-1]})"


__all__ = ["GroupShape", "group_shape"]
