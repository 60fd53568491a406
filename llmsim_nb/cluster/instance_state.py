"""InstanceState: what a router sees of one serving instance.

A router never touches an instance; the cluster hands it one snapshot per
instance (possibly a stale one, as real routers read metrics that lag) and the
router answers with an index. Keeping the view a small frozen record keeps the
routers (:mod:`llmsim_nb.cluster.router`) independent of the instance and
scheduler packages, and lets a test build any situation by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

__all__ = ["InstanceState"]

# Integer fields and their lower bounds; ``num_blocks`` must be >= 1 so that
# ``kv_usage`` is always defined.
_INT_FIELDS = (
    ("index", 0),
    ("num_waiting", 0),
    ("num_running", 0),
    ("num_outstanding", 0),
    ("num_used_blocks", 0),
    ("num_blocks", 1),
    ("cached_prefix_tokens", 0),
)


_FIELDS = ("index", "observed_at", "num_waiting", "num_running", "num_outstanding",
           "num_used_blocks", "num_blocks", "cached_prefix_tokens")


def _is_int(value: object) -> bool:
    """True for Python and numpy integers, never for ``bool``.

    ``numbers.Integral`` covers numpy integer scalars without importing numpy
    (numpy's ``bool_`` is not one; Python's ``bool`` is, hence the exclusion:
    ``True`` is not a count).
    """
    return isinstance(value, Integral) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class InstanceState:
    """What a router sees of one instance at one time (maybe a stale snapshot).

    Parameters
    ----------
    index : int
        Position of the instance in the cluster, ``0 .. N-1``; what a router
        returns to choose it.
    observed_at : float
        Simulated time the snapshot was taken, seconds; finite and ``>= 0``.
    num_waiting : int
        Arrived requests not yet running (the waiting and preempted queues).
    num_running : int
        Requests holding KV blocks and being computed.
    num_outstanding : int
        Requests submitted to this instance and not finished, including those
        that have not arrived at it yet.
    num_used_blocks : int
        KV-cache blocks in use, ``<= num_blocks``.
    num_blocks : int
        KV-cache blocks the instance has, ``>= 1``.
    cached_prefix_tokens : int, optional
        Prompt tokens of the request being routed that are already in this
        instance's prefix cache (0, the default, when it has none or the
        cluster does not look).

    Raises
    ------
    ValueError
        If a count is not an integer ``>= 0`` (``num_blocks >= 1``), if
        ``num_used_blocks > num_blocks``, or if ``observed_at`` is not a finite
        number ``>= 0``; the message names the field and the value. Numpy
        scalars are accepted and stored as plain ``int`` / ``float``.

    Notes
    -----
    ``num_waiting + num_running <= num_outstanding`` holds for a consistent
    snapshot but is not enforced: a cluster may combine its own count of
    outstanding requests with an instance's (staler) queue lengths.
    """

    index: int
    observed_at: float
    num_waiting: int
    num_running: int
    num_outstanding: int
    num_used_blocks: int
    num_blocks: int
    cached_prefix_tokens: int = 0

    def __post_init__(self) -> None:
        for name, minimum in _INT_FIELDS:
            value = getattr(self, name)
            if not _is_int(value):
                raise ValueError(f"InstanceState.{name} must be an integer >= {minimum}, got "
                                 f"{value!r} of type {type(value).__name__}")
            if value < minimum:
                raise ValueError(f"InstanceState.{name} must be >= {minimum}, got {value!r}")
            # Plain ints: a numpy scalar would leak into results and reprs.
            object.__setattr__(self, name, int(value))
        if self.num_used_blocks > self.num_blocks:
            raise ValueError(f"InstanceState.num_used_blocks={self.num_used_blocks} must be <= "
                             f"num_blocks={self.num_blocks}")
        t = self.observed_at
        if isinstance(t, bool) or not isinstance(t, Real):
            raise ValueError(f"InstanceState.observed_at must be a finite number of seconds "
                             f">= 0, got {t!r} of type {type(t).__name__}")
        if not math.isfinite(t) or t < 0:
            raise ValueError(f"InstanceState.observed_at must be a finite number of seconds "
                             f">= 0, got {t!r}")
        object.__setattr__(self, "observed_at", float(t))

    @classmethod
    def trusted(cls, index: int, observed_at: float, num_waiting: int, num_running: int,
                num_outstanding: int, num_used_blocks: int, num_blocks: int,
                cached_prefix_tokens: int = 0) -> "InstanceState":
        """An InstanceState of values the cluster computed itself (plain ints
        within bounds, a float time), without ``__post_init__``'s checks: the
        cluster builds one per instance for every request it routes."""
        state = object.__new__(cls)
        # Straight into the slots (see _SLOT_SETTERS): the frozen dataclass's
        # __setattr__ refuses, and object.__setattr__ costs twice as much.
        _set_index(state, index)
        _set_observed_at(state, observed_at)
        _set_num_waiting(state, num_waiting)
        _set_num_running(state, num_running)
        _set_num_outstanding(state, num_outstanding)
        _set_num_used_blocks(state, num_used_blocks)
        _set_num_blocks(state, num_blocks)
        _set_cached_prefix_tokens(state, cached_prefix_tokens)
        return state

    @property
    def kv_usage(self) -> float:
        """Fraction of the KV-cache blocks in use, ``num_used_blocks / num_blocks`` (0..1)."""
        return self.num_used_blocks / self.num_blocks


#: The setters of InstanceState's slots (``__slots__`` member descriptors), in
#: :data:`_FIELDS` order, for :meth:`InstanceState.trusted`. A subclass without
#: slots of its own shares these slots, so the setters fit it too.
_SLOT_SETTERS = tuple(getattr(InstanceState, name).__set__ for name in _FIELDS)
(_set_index, _set_observed_at, _set_num_waiting, _set_num_running, _set_num_outstanding,
 _set_num_used_blocks, _set_num_blocks, _set_cached_prefix_tokens) = _SLOT_SETTERS
