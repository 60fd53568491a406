"""Expert routing of mixture-of-experts layers: how many tokens each expert gets.

An MoE layer sends each of its ``T`` tokens to ``top_k`` *distinct* experts of
``num_experts`` (a router's top-k never repeats one), so an expert gets 0..``T``
tokens and a layer's counts sum to ``T * top_k`` (with replacement, counts could
pass ``T`` and small batches reach too few experts). Per iteration the counts are
drawn from a :class:`RoutingModel` with an explicit ``numpy.random.Generator``
(never numpy's global state), one row per layer.

An expert with ``c`` tokens runs ``c``-row GEMMs, one with 0 costs nothing
(:class:`ExpertLoad`: active experts, the busiest, ``imbalance`` = max / mean,
1.0 to ``num_experts / top_k``; :meth:`ExpertLoad.per_rank` over an
:class:`ExpertPlacement`). :meth:`RoutingModel.draw_groups` draws several
groups' tokens at once (data-parallel ranks: the dispatch matrix).

Models (:data:`ROUTINGS`, :func:`make_routing`): :class:`UniformRouting`,
:class:`SkewedRouting` (Zipf-like), :class:`TableRouting` (a measured load).
Weighted ones use *successive sampling* (Gumbel-top-k's law): a token draws an
expert with probability proportional to its weight, then one not drawn yet,
``top_k`` times, so the load is flatter than the weights
(:meth:`RoutingModel.inclusion_probabilities`: the exact mean shares). Not
modelled: correlation across layers, iterations or tokens; replicated experts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import ClassVar

import numpy as np

_TINY_MASS = 1e-6    # unchosen weight below which inversion hands over to Gumbel-top-k


def _int(owner: str, name: str, value, minimum: int, maximum: int | None = None) -> int:
    """``value`` as an int in ``minimum..maximum``; a one-line ValueError otherwise."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not ok or value < minimum or (maximum is not None and value > maximum):
        allowed = f">= {minimum}" if maximum is None else f"in {minimum}..{maximum}"
        raise ValueError(f"{owner}.{name} must be an integer {allowed}, got {value!r}")
    return int(value)


def _frozen_ints(owner: str, name: str, value) -> np.ndarray:
    """A read-only int64 copy of a non-empty 1-D integer array."""
    arr = np.asarray(value)
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{owner}.{name} must be a non-empty 1-D integer array, got "
                         f"shape {arr.shape} dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, slots=True, eq=False)
class ExpertPlacement:
    """Which EP rank holds each expert: ``rank_of_expert[e]`` (int64) in
    ``0..num_ranks-1``, one copy of each expert, every rank holding >= 1."""

    rank_of_expert: np.ndarray
    num_ranks: int

    def __post_init__(self) -> None:
        _int("ExpertPlacement", "num_ranks", self.num_ranks, 1)
        ranks = _frozen_ints("ExpertPlacement", "rank_of_expert", self.rank_of_expert)
        bad = np.flatnonzero((ranks < 0) | (ranks >= self.num_ranks))
        if bad.size:
            raise ValueError(f"ExpertPlacement.rank_of_expert[{bad[0]}]={ranks[bad[0]]} must "
                             f"be in 0..num_ranks-1={self.num_ranks - 1}")
        held = np.bincount(ranks, minlength=self.num_ranks)
        if held.min() == 0:
            raise ValueError(f"ExpertPlacement: rank {int(np.argmin(held))} holds no expert; "
                             f"each of num_ranks={self.num_ranks} must hold >= 1")
        object.__setattr__(self, "rank_of_expert", ranks)

    @classmethod
    def contiguous(cls, num_experts: int, num_ranks: int) -> "ExpertPlacement":
        """Equal contiguous runs: rank ``r`` holds experts ``r*n .. (r+1)*n - 1``."""
        e = _int("ExpertPlacement", "num_experts", num_experts, 1)
        r = _int("ExpertPlacement", "num_ranks", num_ranks, 1)
        if e % r:
            raise ValueError(f"ExpertPlacement.contiguous: num_experts={e} must be a "
                             f"multiple of num_ranks={r}")
        return cls(np.arange(e) // (e // r), r)

    @classmethod
    def from_table(cls, table, num_ranks: int) -> "ExpertPlacement":
        """A user's placement: ``table[e]`` is the rank of expert ``e`` (validated)."""
        return cls(np.asarray(table), num_ranks)

    @property
    def num_experts(self) -> int:
        return len(self.rank_of_expert)

    def experts_of(self, rank: int) -> np.ndarray:
        """The experts rank ``rank`` holds, ascending."""
        rank = _int("ExpertPlacement", "rank", rank, 0, self.num_ranks - 1)
        return np.flatnonzero(self.rank_of_expert == rank)

    def tokens_per_rank(self, counts) -> np.ndarray:
        """Per-expert counts, shape ``(..., num_experts)``, summed to ``(..., num_ranks)``."""
        counts = np.asarray(counts)
        if counts.ndim < 1 or counts.shape[-1] != self.num_experts:
            raise ValueError(f"ExpertPlacement.tokens_per_rank: counts shape {counts.shape} "
                             f"must end in num_experts={self.num_experts}")
        return counts @ (self.rank_of_expert[:, None] == np.arange(self.num_ranks))


@dataclass(frozen=True, slots=True, eq=False)
class ExpertLoad:
    """Tokens per expert of one MoE layer in one iteration: ``tokens_per_expert``
    (int64, ``(num_experts,)``) each in ``0..num_tokens``, summing to ``T * top_k``."""

    tokens_per_expert: np.ndarray
    num_tokens: int
    top_k: int

    def __post_init__(self) -> None:
        c = _frozen_ints("ExpertLoad", "tokens_per_expert", self.tokens_per_expert)
        t = _int("ExpertLoad", "num_tokens", self.num_tokens, 0)
        k = _int("ExpertLoad", "top_k", self.top_k, 1, len(c))
        if c.min() < 0 or c.max() > t or c.sum() != t * k:
            raise ValueError(f"ExpertLoad.tokens_per_expert must be in 0..num_tokens={t} and "
                             f"sum to num_tokens * top_k = {t * k}, got min {c.min()} max "
                             f"{c.max()} sum {c.sum()}")
        object.__setattr__(self, "tokens_per_expert", c)

    @property
    def num_experts(self) -> int:
        return len(self.tokens_per_expert)

    @property
    def num_active_experts(self) -> int:  # experts with a token: those whose GEMMs run
        return int(np.count_nonzero(self.tokens_per_expert))

    @property
    def max_tokens(self) -> int:
        return int(self.tokens_per_expert.max())

    @property
    def imbalance(self) -> float:
        """``max / mean`` tokens over all experts (1.0 balanced, and without tokens)."""
        t = self.num_tokens
        return 1.0 if t == 0 else self.max_tokens * self.num_experts / (t * self.top_k)

    def per_rank(self, placement: ExpertPlacement) -> np.ndarray:  # tokens each EP rank runs
        return placement.tokens_per_rank(self.tokens_per_expert)


def expert_load(counts_row, num_tokens: int, top_k: int) -> ExpertLoad:
    """An :class:`ExpertLoad` from one row of :meth:`RoutingModel.draw`."""
    return ExpertLoad(np.asarray(counts_row), num_tokens, top_k)


def _successive_picks(n: int, w: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rows of ``k`` distinct experts, successive sampling weighted by ``w > 0``;
    exact. Draw ``j``: a plain draw from ``w``, kept if new (while the mean drawn mass
    is < 1/2); else invert the unchosen experts' CDF (``v`` uniform in ``[0, unchosen
    mass)`` moved past the chosen intervals, ascending). Rows where rounding could
    matter (unchosen mass < ``_TINY_MASS``, a repeat) finish by Gumbel-top-k."""
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    start = np.concatenate(([0.0], cdf[:-1]))
    p = cdf - start
    picks = np.empty((n, k), np.int64)
    mass = np.zeros(n)
    handover = np.full(n, k)     # first draw of each row left to Gumbel-top-k
    for j in range(k):
        x = np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(w) - 1)
        redo = (np.flatnonzero((picks[:, :j] == x[:, None]).any(axis=1))
                if mass.mean() < 0.5 else np.arange(n))
        s = np.sort(picks[redo, :j], axis=1)
        ps = p[s]
        v = rng.random(redo.size) * (1.0 - mass[redo])
        v += ((start[s] <= v[:, None] + (np.cumsum(ps, axis=1) - ps)) * ps).sum(axis=1)
        x[redo] = y = np.minimum(np.searchsorted(cdf, v, side="right"), len(w) - 1)
        risky = redo[(1.0 - mass[redo] < _TINY_MASS) | (s == y[:, None]).any(axis=1)]
        handover[risky[handover[risky] == k]] = j
        picks[:, j] = x
        mass += p[x]
    for j in np.unique(handover[handover < k]):
        rows = np.flatnonzero(handover == j)
        with np.errstate(divide="ignore"):     # log(0) = -inf: a key that wins
            keys = np.log(rng.standard_exponential((rows.size, len(w)))) - np.log(w)
        np.put_along_axis(keys, picks[rows, :j], np.inf, axis=1)
        picks[rows, j:] = keys.argpartition(k - j - 1, axis=1)[:, :k - j]
    return picks


def _uniform_picks(n: int, e: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniform ``k``-subsets of ``0..e-1``, exact: if a k-tuple is distinct with
    probability >= 1/4, draw tuples and redraw rows with a repeat (a tuple conditioned
    on being distinct is uniform), else equal-weight successive sampling."""
    if math.prod(1.0 - i / e for i in range(k)) < 0.25:
        return _successive_picks(n, np.ones(e), k, rng)
    picks = rng.integers(0, e, size=(n, k))
    picks.sort(axis=1)
    bad = np.flatnonzero((picks[:, 1:] == picks[:, :-1]).any(axis=1))
    while bad.size:
        new = rng.integers(0, e, size=(bad.size, k))
        new.sort(axis=1)
        picks[bad] = new
        bad = bad[(new[:, 1:] == new[:, :-1]).any(axis=1)]
    return picks


def _counts(sizes: np.ndarray, w: np.ndarray, k: int, rng) -> np.ndarray:
    """(rows, E) counts of rows of ``sizes[r]`` tokens (drawn in row order), weights ``w``."""
    on = np.flatnonzero(w > 0)
    e, flat = on.size, bool(np.all(w[on] == w[on[0]]))
    kk = min(k, e - k) if flat else k     # k > e/2: draw the e - k experts a token skips
    rows, total = len(sizes), int(sizes.sum())
    out = np.zeros((rows, len(w)), np.int64)
    picks = _uniform_picks(total, e, kk, rng) if flat else _successive_picks(total, w[on], k, rng)
    flat_picks = picks + (np.repeat(np.arange(rows), sizes) * e)[:, None]
    counts = np.bincount(flat_picks.ravel(), minlength=rows * e).reshape(rows, e)
    out[:, on] = counts if kk == k else sizes[:, None] - counts
    return out


def _inclusion(w: np.ndarray, k: int) -> np.ndarray:
    """P(expert e is among ``k`` successive draws weighted by ``w``). With keys
    ``X_e / w_e`` (``X`` standard exponential; the draws are the k smallest keys),
    ``pi_e = int w_e exp(-w_e t) P(< k other keys below t) dt``: a Poisson-binomial
    DP over experts in 8-node Gauss-Legendre per unit of ``log t``. O(E^2 k) time;
    error per expert < 1e-10 at k = 8, about 1e-8 at k = 32."""
    pi = np.zeros(len(w))
    on = np.flatnonzero(w > 0)
    p = w[on] / w[on].sum()
    if k == 1 or len(p) == k or np.all(p == p[0]):
        pi[on] = p if k == 1 else k / len(p)
        return pi
    # below t = 1e-4 fewer than k keys are (almost surely) below t; above hi, k are
    lo, hi = math.log(1e-4), math.log(50.0 / np.sort(p)[-k - 1])
    seg = np.linspace(lo, hi, max(8, math.ceil(hi - lo)) + 1)
    x, wq = np.polynomial.legendre.leggauss(8)
    half = (seg[1] - seg[0]) / 2
    pt = np.outer(p, np.exp(((seg[:-1] + seg[1:]) / 2)[:, None] + half * x).ravel())
    below = -np.expm1(-pt)                  # P(key_j < t), (experts, nodes)
    dp = np.zeros((k,) + pt.shape)          # dp[c, e]: P(c keys other than e's below t)
    dp[0] = 1.0
    for j in range(len(p)):
        own = dp[:, j].copy()
        for c in range(k - 1, 0, -1):
            dp[c] = dp[c] * (1.0 - below[j]) + dp[c - 1] * below[j]
        dp[0] *= 1.0 - below[j]
        dp[:, j] = own
    # d log t = dt / t; the part below t = exp(lo) in closed form
    pi[on] = (pt * np.exp(-pt) * dp.sum(axis=0)) @ np.tile(wq * half, len(seg) - 1) - np.expm1(
        -p * math.exp(lo))
    return pi


class RoutingModel:
    """Base of the routing models (frozen dataclasses with ``num_experts``, ``top_k``)."""

    __slots__ = ()
    name: ClassVar[str] = ""

    def __post_init__(self) -> None:
        _int(type(self).__name__, "num_experts", self.num_experts, 1)
        _int(type(self).__name__, "top_k", self.top_k, 1, self.num_experts)

    def _rows(self) -> np.ndarray:    # (rows, num_experts) weights; layer l: row l % rows
        return np.ones((1, self.num_experts))

    def draw(self, num_tokens: int, num_layers: int, rng: np.random.Generator) -> np.ndarray:
        """Tokens per expert, int64 ``(num_layers, num_experts)``: row ``l`` is layer ``l``'s
        (independent), counts in ``0..num_tokens`` summing to ``num_tokens * top_k``."""
        owner = type(self).__name__
        t = _int(owner, "num_tokens", num_tokens, 0)
        layers = _int(owner, "num_layers", num_layers, 1)
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"{owner}.draw: rng must be a numpy.random.Generator "
                             f"(numpy.random.default_rng(seed)), got {type(rng).__name__}")
        if t == 0:
            return np.zeros((layers, self.num_experts), np.int64)
        rows = self._rows()
        out = np.empty((layers, self.num_experts), np.int64)
        for r in range(min(len(rows), layers)):      # layer l uses row l % len(rows)
            out[r::len(rows)] = _counts(np.full(len(out[r::len(rows)]), t), rows[r],
                                        self.top_k, rng)
        return out

    def draw_groups(self, num_tokens, rng: np.random.Generator) -> np.ndarray:
        """Tokens per expert of groups of ``num_tokens[g]`` tokens (data-parallel ranks),
        int64 ``(groups, num_experts)``, in one draw with layer 0's weights (tokens route
        independently: distributed as a draw per group)."""
        sizes = np.asarray(num_tokens, dtype=np.int64)
        if sizes.ndim != 1 or (sizes < 0).any() or not isinstance(rng, np.random.Generator):
            raise ValueError(f"{type(self).__name__}.draw_groups needs token counts >= 0 and a "
                             f"numpy.random.Generator, got {num_tokens!r}, {type(rng).__name__}")
        return (_counts(sizes, self._rows()[0], self.top_k, rng) if sizes.sum()
                else np.zeros((len(sizes), self.num_experts), np.int64))

    def inclusion_probabilities(self) -> np.ndarray:
        """P(a token picks expert ``e``), ``(num_experts,)``, summing to ``top_k``: the mean
        ``tokens_e / num_tokens`` (over a table's rows). Weighted: ~0.1 s at E = 256."""
        return np.mean([_inclusion(w, self.top_k) for w in self._rows()], axis=0)

    def expected_active_experts(self, num_tokens: int) -> float:
        """Expected experts with >= 1 token, ``sum_e 1 - (1 - pi_e) ** T`` (tokens
        route independently); uniform: ``E * (1 - (1 - k / E) ** T)``."""
        t = _int(type(self).__name__, "num_tokens", num_tokens, 0)
        return float(np.mean([np.sum(1.0 - (1.0 - _inclusion(w, self.top_k)) ** t)
                              for w in self._rows()]))


@dataclass(frozen=True, slots=True)
class UniformRouting(RoutingModel):
    """Every token picks ``top_k`` distinct experts uniformly at random."""

    num_experts: int
    top_k: int
    name: ClassVar[str] = "uniform"


@dataclass(frozen=True, slots=True)
class SkewedRouting(RoutingModel):
    """Zipf-like popularity ``w_e = (e + 1) ** -exponent``, successive sampling.

    ``exponent = 0`` draws what :class:`UniformRouting` draws from the same generator.
    Expert 0 is the most popular: a contiguous placement puts the hot experts on
    rank 0, the worst case for EP (permute the placement for a balanced one)."""

    num_experts: int
    top_k: int
    exponent: float
    name: ClassVar[str] = "skewed"
    _weights: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        RoutingModel.__post_init__(self)
        a = self.exponent
        if (not isinstance(a, (int, float, np.integer, np.floating)) or isinstance(a, bool)
                or not (0 <= a < math.inf)):
            raise ValueError(f"SkewedRouting.exponent must be a finite number >= 0, got {a!r}")
        w = np.exp(-a * np.log(np.arange(1.0, self.num_experts + 1)))
        if np.count_nonzero(w) < self.top_k:
            raise ValueError(f"SkewedRouting.exponent={a!r} is too large: fewer than "
                             f"top_k={self.top_k} experts keep a weight above float64 zero")
        object.__setattr__(self, "_weights", w / w.sum())

    def _rows(self) -> np.ndarray:
        return self._weights[None, :]


@dataclass(frozen=True, slots=True, eq=False)
class TableRouting(RoutingModel):
    """A user's measured expert load as successive-sampling weights: ``load`` holds
    non-negative per-expert shares (counts do: rows are normalised), ``(num_experts,)``
    for all layers or ``(rows, num_experts)`` with layer ``l`` of a draw on row ``l %
    rows`` (draw all MoE layers in one call); each row >= ``top_k`` positive shares."""

    num_experts: int
    top_k: int
    load: np.ndarray
    name: ClassVar[str] = "table"

    def __post_init__(self) -> None:
        RoutingModel.__post_init__(self)
        table = np.array(self.load)
        if (table.dtype.kind not in "iuf" or table.ndim not in (1, 2) or not table.size
                or table.shape[-1] != self.num_experts):
            raise ValueError(f"TableRouting.load must be numbers of shape (num_experts,) or "
                             f"(rows, num_experts), num_experts={self.num_experts}; got "
                             f"shape {table.shape} dtype {table.dtype}")
        table = table.astype(np.float64)
        bad = np.argwhere(~np.isfinite(table) | (table < 0))
        if len(bad):
            raise ValueError(f"TableRouting.load[{', '.join(map(str, bad[0]))}]="
                             f"{float(table[tuple(bad[0])])} must be finite and >= 0")
        positive = np.count_nonzero(table.reshape(-1, self.num_experts) > 0, axis=1)
        if positive.min() < self.top_k:
            raise ValueError(f"TableRouting.load row {np.argmin(positive)} has {positive.min()} "
                             f"experts with share > 0, fewer than top_k={self.top_k}")
        table /= table.sum(axis=-1, keepdims=True)
        table.flags.writeable = False
        object.__setattr__(self, "load", table)

    def _rows(self) -> np.ndarray:
        return self.load.reshape(-1, self.num_experts)


#: Routing models by name.
ROUTINGS: dict[str, type[RoutingModel]] = {
    cls.name: cls for cls in (UniformRouting, SkewedRouting, TableRouting)}


def make_routing(name: str, num_experts: int, top_k: int, **params) -> RoutingModel:
    """The routing model ``name`` (a key of :data:`ROUTINGS`) built with ``params``."""
    if not isinstance(name, str) or name not in ROUTINGS:
        raise ValueError(f"unknown routing {name!r}; allowed: {sorted(ROUTINGS)}")
    wanted = [f.name for f in fields(ROUTINGS[name]) if f.init][2:]
    unknown, missing = sorted(set(params) - set(wanted)), sorted(set(wanted) - set(params))
    if unknown or missing:
        raise ValueError(f"routing {name!r} takes parameters {wanted}; got unknown "
                         f"{unknown}, missing {missing}")
    return ROUTINGS[name](num_experts, top_k, **params)
