"""Expert routing of MoE layers: invariants, statistics, placement, bad inputs.

Statistical tests use fixed seeds, so they are deterministic; their tolerances
are still chosen as if they were not. A mean over ``N`` independent layers is
compared with its exact expectation within ``Z`` standard errors (sample std /
sqrt(N)): at ``Z = 4`` a correct sampler fails with probability ~6e-5 per
check, at ``Z = 4.5`` over 64 experts at once ~4e-4 (Bonferroni). Where it
matters, a test also shows the tolerance has power: the nearest wrong model
(sampling with replacement) lies many standard errors outside it.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from llmsim_nb.models.expert_routing import (
    ROUTINGS, ExpertLoad, ExpertPlacement, RoutingModel, SkewedRouting, TableRouting,
    UniformRouting, _successive_picks, _uniform_picks, expert_load, make_routing)

Z = 4.0

MODELS = {
    "uniform-256-8": UniformRouting(256, 8),
    "uniform-8-2": UniformRouting(8, 2),
    "uniform-1-1": UniformRouting(1, 1),
    "uniform-16-12-complement": UniformRouting(16, 12),
    "uniform-64-16-no-rejection": UniformRouting(64, 16),
    "skewed-64-4": SkewedRouting(64, 4, 1.2),
    "skewed-32-6-extreme": SkewedRouting(32, 6, 8.0),
    "table-1d-zeros": TableRouting(8, 3, [5, 0, 1, 2, 0, 3, 1, 1]),
    "table-2d": TableRouting(6, 2, [[1, 1, 0, 0, 0, 1], [0, 2, 3, 4, 1, 0]]),
}


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def mean_within(samples: np.ndarray, expected: float, z: float = Z) -> bool:
    se = samples.std(ddof=1) / np.sqrt(len(samples))
    return abs(samples.mean() - expected) <= z * se


# ---- exact invariants ------------------------------------------------------------------

@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("tokens,layers", [(1, 1), (7, 3), (256, 2), (1000, 5)])
def test_counts_invariants(name, tokens, layers):
    model = MODELS[name]
    counts = model.draw(tokens, layers, rng(tokens))
    assert counts.shape == (layers, model.num_experts) and counts.dtype == np.int64
    np.testing.assert_array_equal(counts.sum(axis=1), tokens * model.top_k)
    assert counts.min() >= 0 and counts.max() <= tokens      # distinct experts per token
    weights = model._rows()
    for layer, row in enumerate(counts):
        assert (row[weights[layer % len(weights)] == 0] == 0).all()   # zero share: no tokens


@pytest.mark.parametrize("name", MODELS)
def test_zero_tokens_give_zeros(name):
    model = MODELS[name]
    counts = model.draw(0, 4, rng())
    np.testing.assert_array_equal(counts, np.zeros((4, model.num_experts), np.int64))
    assert model.expected_active_experts(0) == 0.0


@pytest.mark.parametrize("model", [UniformRouting(16, 16), SkewedRouting(16, 16, 1.5),
                                   TableRouting(4, 4, [1, 2, 3, 4]), UniformRouting(1, 1)])
def test_top_k_equal_num_experts_gives_every_expert_every_token(model):
    np.testing.assert_array_equal(model.draw(37, 3, rng()), 37)


def test_one_token_reaches_exactly_top_k_experts_once():
    for model in (UniformRouting(256, 8), SkewedRouting(256, 8, 2.0)):
        counts = model.draw(1, 500, rng())
        assert set(np.unique(counts)) == {0, 1}
        np.testing.assert_array_equal((counts == 1).sum(axis=1), 8)


@pytest.mark.parametrize("e,k", [(256, 8), (8, 4), (64, 16), (5, 1), (3, 3)])
def test_uniform_sampler_rows_are_distinct(e, k):
    picks = np.sort(_uniform_picks(5000, e, k, rng()), axis=1)
    assert picks.shape == (5000, k) and picks.min() >= 0 and picks.max() < e
    assert not (picks[:, 1:] == picks[:, :-1]).any()


@pytest.mark.parametrize("exponent", [0.5, 2.0, 12.0, 200.0])
def test_successive_sampler_rows_are_distinct_even_at_extreme_skew(exponent):
    """Large exponents leave so little unchosen weight that inversion hands the
    rows over to Gumbel-top-k; the rows must still be distinct and valid."""
    w = np.arange(1.0, 33.0) ** -exponent
    picks = np.sort(_successive_picks(4000, w, 6, rng()), axis=1)
    assert picks.min() >= 0 and picks.max() < 32
    assert not (picks[:, 1:] == picks[:, :-1]).any()
    if exponent == 200.0:      # any other set than the top 6 has probability < (6/7)^200
        np.testing.assert_array_equal(picks, np.broadcast_to(np.arange(6), picks.shape))


# ---- determinism, independence, numpy global state ----------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_same_seed_same_draw(name):
    model = MODELS[name]
    np.testing.assert_array_equal(model.draw(300, 6, rng(42)), model.draw(300, 6, rng(42)))
    if model.num_experts > model.top_k:
        assert not np.array_equal(model.draw(300, 6, rng(1)), model.draw(300, 6, rng(2)))


def test_draw_leaves_numpy_global_state_alone():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    for model in MODELS.values():
        model.draw(100, 2, rng())
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_layers_of_one_draw_are_independent():
    """Active experts of paired layers (rows 2i, 2i+1) are uncorrelated: Pearson
    r of N pairs has standard error ~1/sqrt(N)."""
    counts = UniformRouting(64, 4).draw(16, 8000, rng(7))
    active = (counts > 0).sum(axis=1).astype(float)
    r = np.corrcoef(active[0::2], active[1::2])[0, 1]
    assert abs(r) < Z / np.sqrt(4000)


# ---- statistics ------------------------------------------------------------------------

@pytest.mark.parametrize("e,k,t", [(256, 8, 16), (256, 8, 64), (64, 6, 10), (16, 12, 3)])
def test_uniform_mean_active_experts_matches_closed_form(e, k, t):
    model = UniformRouting(e, k)
    expected = e * (1 - (1 - k / e) ** t)
    assert model.expected_active_experts(t) == pytest.approx(expected, rel=1e-12)
    active = (model.draw(t, 4000, rng(t)) > 0).sum(axis=1).astype(float)
    assert mean_within(active, expected)
    if (e, k, t) == (256, 8, 16):    # power: sampling with replacement would be caught
        with_replacement = e * (1 - (1 - 1 / e) ** (t * k))
        assert not mean_within(active, with_replacement, z=3 * Z)


def test_uniform_per_expert_counts_are_binomial():
    """Marginally each expert's count is Binomial(T, k/E): mean and variance."""
    e, k, t = 32, 4, 20
    counts = UniformRouting(e, k).draw(t, 5000, rng(3)).astype(float)
    p = k / e
    assert mean_within(counts[:, 5], t * p)
    assert counts.var(ddof=1) == pytest.approx(t * p * (1 - p), rel=0.03)   # 160k samples


def test_skewed_expert_zero_busier_than_the_last():
    model = SkewedRouting(64, 4, 1.0)
    counts = model.draw(128, 2000, rng(5))
    assert counts[:, 0].mean() > counts[:, -1].mean() + 10
    means = counts.mean(axis=0)
    assert (np.diff(means[:8]) < 0).all()      # popularity falls with the index
    assert counts.max() <= 128                 # never more than T, even for the hottest


@pytest.mark.parametrize("model", [
    SkewedRouting(64, 4, 1.0), SkewedRouting(64, 8, 2.0), SkewedRouting(16, 2, 0.7),
    SkewedRouting(32, 6, 12.0),        # the last draws go through the Gumbel handover
    TableRouting(8, 3, [5, 0, 1, 2, 0, 3, 1, 1])])
def test_weighted_mean_counts_match_inclusion_probabilities(model):
    """Per expert, mean tokens / T over N layers equals the quadrature's pi_e
    (each count is Binomial(T, pi_e)); checks both sampler and quadrature. The
    normal approximation needs >= 30 expected tokens in all; rarer experts (the
    Zipf tail) only get a loose Poisson-style bound."""
    t, n = 32, 4000
    pi = model.inclusion_probabilities()
    assert pi.sum() == pytest.approx(model.top_k, abs=1e-7) and pi.max() <= 1 + 1e-9
    counts = model.draw(t, n, rng(11))
    common = n * t * pi * (1 - pi) >= 30
    se = np.sqrt(t * pi * (1 - pi) / n)[common]
    assert (np.abs(counts.mean(axis=0)[common] - t * pi[common]) <= 4.5 * se).all()
    rare = counts.sum(axis=0)[~common]
    assert (rare <= 3 * n * t * pi[~common] + 12).all()
    active = (model.draw(4, n, rng(12)) > 0).sum(axis=1).astype(float)   # T = 4: varies
    assert mean_within(active, model.expected_active_experts(4))


def test_inclusion_probabilities_closed_forms():
    np.testing.assert_allclose(UniformRouting(256, 8).inclusion_probabilities(), 8 / 256)
    w = np.arange(1.0, 17.0) ** -1.3
    np.testing.assert_allclose(SkewedRouting(16, 1, 1.3).inclusion_probabilities(),
                               w / w.sum(), rtol=1e-8)
    table = TableRouting(6, 2, [[1, 1, 0, 0, 0, 1], [0, 2, 3, 4, 1, 0]])
    np.testing.assert_allclose(table.inclusion_probabilities()[[0, 5]], [1 / 3, 1 / 3])
    assert table.inclusion_probabilities().sum() == pytest.approx(2)
    pi = SkewedRouting(64, 8, 2.0).inclusion_probabilities()
    assert (np.diff(pi) <= 1e-12).all() and pi[0] > pi[-1]
    w0 = 1 / np.sum(np.arange(1.0, 65.0) ** -2.0)     # expert 0's weight share, ~0.61
    assert pi[0] <= 1 + 1e-9 and pi[0] / 8 <= 1 / 8 + 1e-10 < w0   # load flatter than weight


def test_skewed_exponent_zero_is_uniform():
    uniform, flat = UniformRouting(128, 6), SkewedRouting(128, 6, 0)
    np.testing.assert_array_equal(flat.draw(500, 4, rng(9)), uniform.draw(500, 4, rng(9)))
    assert flat.expected_active_experts(20) == pytest.approx(uniform.expected_active_experts(20))


def test_successive_sampler_with_equal_weights_is_uniform_in_distribution():
    """The weighted sampler (not the uniform shortcut) on equal weights: per-expert
    means k/E and mean active experts E (1 - (1 - k/E)^T), compared as means."""
    e, k, t, n = 48, 6, 12, 3000
    picks = _successive_picks(n * t, np.ones(e), k, rng(4)).reshape(n, t * k)
    counts = np.stack([np.bincount(row, minlength=e) for row in picks]).astype(float)
    assert mean_within(counts.ravel(), t * k / e)
    assert mean_within((counts > 0).sum(axis=1), e * (1 - (1 - k / e) ** t))


def test_table_rows_are_normalised_and_cycled():
    a = TableRouting(6, 2, [2, 2, 4, 0, 0, 2])
    b = TableRouting(6, 2, [0.2, 0.2, 0.4, 0.0, 0.0, 0.2])
    np.testing.assert_allclose(a.load, b.load)
    np.testing.assert_array_equal(a.draw(50, 3, rng(1)), b.draw(50, 3, rng(1)))
    two = TableRouting(4, 2, [[1, 1, 0, 0], [0, 0, 1, 1]])
    counts = two.draw(9, 5, rng())
    np.testing.assert_array_equal(counts[0::2], [[9, 9, 0, 0]] * 3)
    np.testing.assert_array_equal(counts[1::2], [[0, 0, 9, 9]] * 2)
    assert not two.load.flags.writeable


# ---- ExpertLoad and ExpertPlacement ----------------------------------------------------

def test_expert_load_properties():
    load = expert_load(np.array([3, 0, 1, 4]), num_tokens=4, top_k=2)
    assert isinstance(load, ExpertLoad) and load.tokens_per_expert.dtype == np.int64
    assert (load.num_experts, load.num_active_experts, load.max_tokens) == (4, 3, 4)
    assert load.imbalance == pytest.approx(4 / 2)
    assert expert_load([2, 2, 2, 2], 4, 2).imbalance == 1.0
    assert expert_load([0, 0, 0], 0, 1).imbalance == 1.0         # documented convention
    assert expert_load([5, 5, 0, 0], 5, 2).imbalance == pytest.approx(4 / 2)   # E / k at most
    row = UniformRouting(256, 8).draw(256, 1, rng())[0]
    drawn = expert_load(row, 256, 8)
    assert drawn.num_active_experts == np.count_nonzero(row) and drawn.imbalance >= 1.0
    assert not drawn.tokens_per_expert.flags.writeable


def test_contiguous_placement_and_per_rank():
    placement = ExpertPlacement.contiguous(256, 8)
    np.testing.assert_array_equal(np.bincount(placement.rank_of_expert), [32] * 8)
    np.testing.assert_array_equal(placement.experts_of(3), np.arange(96, 128))
    counts = SkewedRouting(256, 8, 1.0).draw(512, 3, rng())
    load = expert_load(counts[0], 512, 8)
    per_rank = load.per_rank(placement)
    assert per_rank.shape == (8,) and per_rank.sum() == 512 * 8
    np.testing.assert_array_equal(per_rank, counts[0].reshape(8, 32).sum(axis=1))
    assert per_rank[0] == per_rank.max()       # hot experts share rank 0
    np.testing.assert_array_equal(placement.tokens_per_rank(counts),
                                  counts.reshape(3, 8, 32).sum(axis=2))


def test_placement_from_table():
    placement = ExpertPlacement.from_table([1, 0, 1, 2, 0, 2], 3)
    np.testing.assert_array_equal(placement.experts_of(0), [1, 4])
    np.testing.assert_array_equal(placement.experts_of(2), [3, 5])
    load = expert_load([1, 2, 3, 0, 2, 0], num_tokens=4, top_k=2)
    np.testing.assert_array_equal(load.per_rank(placement), [4, 4, 0])
    assert not placement.rank_of_expert.flags.writeable


# ---- bad inputs: one-line ValueErrors naming the field and the value ------------------

def raises(pattern: str):
    return pytest.raises(ValueError, match=pattern)


@pytest.mark.parametrize("build,pattern", [
    (lambda: UniformRouting(0, 1), r"UniformRouting\.num_experts must be an integer >= 1, got 0"),
    (lambda: UniformRouting(8.0, 1), r"num_experts must be an integer >= 1, got 8\.0"),
    (lambda: UniformRouting(True, 1), r"num_experts must be an integer >= 1, got True"),
    (lambda: UniformRouting(8, 0), r"UniformRouting\.top_k must be an integer in 1\.\.8, got 0"),
    (lambda: UniformRouting(8, 9), r"top_k must be an integer in 1\.\.8, got 9"),
    (lambda: SkewedRouting(8, 2, -1.0), r"SkewedRouting\.exponent must be a finite number >= 0, "
                                        r"got -1\.0"),
    (lambda: SkewedRouting(8, 2, float("nan")), r"exponent must be a finite number >= 0, got nan"),
    (lambda: SkewedRouting(8, 2, float("inf")), r"exponent must be a finite number >= 0, got inf"),
    (lambda: SkewedRouting(8, 2, "1"), r"exponent must be a finite number >= 0, got '1'"),
    (lambda: SkewedRouting(8, 2, True), r"exponent must be a finite number >= 0, got True"),
    (lambda: SkewedRouting(16, 8, 1e4), r"SkewedRouting\.exponent=10000\.0 is too large: fewer "
                                        r"than top_k=8"),
    (lambda: TableRouting(4, 2, [1, 1, 1]), r"TableRouting\.load must be numbers of shape "
                                            r"\(num_experts,\).*num_experts=4; got shape \(3,\)"),
    (lambda: TableRouting(2, 1, [[[1, 1]]]), r"TableRouting\.load must .* got shape \(1, 1, 2\)"),
    (lambda: TableRouting(2, 1, []), r"TableRouting\.load must .* got shape \(0,\)"),
    (lambda: TableRouting(2, 1, ["a", "b"]), r"TableRouting\.load must be numbers.*dtype <U1"),
    (lambda: TableRouting(2, 1, [True, False]), r"TableRouting\.load must be numbers.*dtype bool"),
    (lambda: TableRouting(3, 1, [1, -2, 1]), r"TableRouting\.load\[1\]=-2\.0 must be finite "
                                             r"and >= 0"),
    (lambda: TableRouting(3, 1, [[1, 1, 1], [1, np.nan, 1]]), r"TableRouting\.load\[1, 1\]=nan"),
    (lambda: TableRouting(3, 1, [1, np.inf, 1]), r"TableRouting\.load\[1\]=inf must be finite"),
    (lambda: TableRouting(4, 3, [[1, 1, 1, 0], [1, 0, 0, 1]]),
     r"TableRouting\.load row 1 has 2 experts with share > 0, fewer than top_k=3"),
    (lambda: TableRouting(4, 1, [0, 0, 0, 0]), r"row 0 has 0 experts with share > 0"),
])
def test_bad_models(build, pattern):
    with raises(pattern):
        build()


@pytest.mark.parametrize("args,pattern", [
    ((-1, 1, rng()), r"UniformRouting\.num_tokens must be an integer >= 0, got -1"),
    ((2.0, 1, rng()), r"num_tokens must be an integer >= 0, got 2\.0"),
    ((True, 1, rng()), r"num_tokens must be an integer >= 0, got True"),
    ((4, 0, rng()), r"UniformRouting\.num_layers must be an integer >= 1, got 0"),
    ((4, 1.5, rng()), r"num_layers must be an integer >= 1, got 1\.5"),
    ((4, 1, 7), r"UniformRouting\.draw: rng must be a numpy\.random\.Generator .*got int"),
    ((4, 1, None), r"rng must be a numpy\.random\.Generator .*got NoneType"),
    ((4, 1, np.random.RandomState(0)), r"rng must be a numpy\.random\.Generator .*RandomState"),
])
def test_bad_draws(args, pattern):
    with raises(pattern):
        UniformRouting(8, 2).draw(*args)


def test_numpy_integers_are_accepted():
    counts = UniformRouting(np.int64(8), np.int32(2)).draw(np.int64(5), np.int16(2), rng())
    assert counts.sum() == 20


@pytest.mark.parametrize("build,pattern", [
    (lambda: ExpertPlacement.contiguous(256, 7),
     r"ExpertPlacement\.contiguous: num_experts=256 must be a multiple of num_ranks=7"),
    (lambda: ExpertPlacement.contiguous(0, 1), r"ExpertPlacement\.num_experts must be an "
                                               r"integer >= 1, got 0"),
    (lambda: ExpertPlacement.contiguous(8, 0), r"ExpertPlacement\.num_ranks must be an integer "
                                               r">= 1, got 0"),
    (lambda: ExpertPlacement.from_table([0, 1, 3], 3),
     r"ExpertPlacement\.rank_of_expert\[2\]=3 must be in 0\.\.num_ranks-1=2"),
    (lambda: ExpertPlacement.from_table([0, -1], 2), r"rank_of_expert\[1\]=-1 must be in"),
    (lambda: ExpertPlacement.from_table([0, 0, 2], 3),
     r"ExpertPlacement: rank 1 holds no expert; each of num_ranks=3 must hold >= 1"),
    (lambda: ExpertPlacement.from_table([0.0, 1.0], 2),
     r"ExpertPlacement\.rank_of_expert must be a non-empty 1-D integer array, got shape "
     r"\(2,\) dtype float64"),
    (lambda: ExpertPlacement.from_table([[0, 1]], 2), r"1-D integer array, got shape \(1, 2\)"),
    (lambda: ExpertPlacement.from_table([], 1), r"non-empty 1-D integer array, got shape \(0,\)"),
    (lambda: ExpertPlacement.contiguous(8, 2).experts_of(2),
     r"ExpertPlacement\.rank must be an integer in 0\.\.1, got 2"),
    (lambda: expert_load([1, 1], 2, 1).per_rank(ExpertPlacement.contiguous(4, 2)),
     r"tokens_per_rank: counts shape \(2,\) must end in num_experts=4"),
])
def test_bad_placements(build, pattern):
    with raises(pattern):
        build()


@pytest.mark.parametrize("args,pattern", [
    (([3, 0, 1], 3, 2), r"ExpertLoad\.tokens_per_expert must be in 0\.\.num_tokens=3 and sum "
                        r"to num_tokens \* top_k = 6, got min 0 max 3 sum 4"),
    (([4, 2, 0], 3, 2), r"tokens_per_expert must be in 0\.\.num_tokens=3 .* max 4 sum 6"),
    (([-1, 4, 3], 3, 2), r"got min -1"),
    (([1.0, 1.0], 1, 2), r"ExpertLoad\.tokens_per_expert must be a non-empty 1-D integer array"),
    (([1, 1], 1, 3), r"ExpertLoad\.top_k must be an integer in 1\.\.2, got 3"),
    (([1, 1], -1, 1), r"ExpertLoad\.num_tokens must be an integer >= 0, got -1"),
])
def test_bad_expert_loads(args, pattern):
    with raises(pattern):
        expert_load(*args)


def test_error_messages_are_one_line():
    for build in (lambda: TableRouting(4, 3, [[1, 1, 1, 0], [1, 0, 0, 1]]),
                  lambda: make_routing("zipf", 8, 2), lambda: SkewedRouting(8, 2, -1)):
        with pytest.raises(ValueError) as err:
            build()
        assert "\n" not in str(err.value)


# ---- registry ---------------------------------------------------------------------------

def test_registry_and_make_routing():
    assert ROUTINGS == {"uniform": UniformRouting, "skewed": SkewedRouting,
                        "table": TableRouting}
    assert all(issubclass(cls, RoutingModel) and cls.name == key for key, cls in ROUTINGS.items())
    assert make_routing("uniform", 64, 4) == UniformRouting(64, 4)
    assert make_routing("skewed", 64, 4, exponent=0.8) == SkewedRouting(64, 4, 0.8)
    table = make_routing("table", 4, 2, load=[1, 2, 3, 4])
    assert isinstance(table, TableRouting) and table.load.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("name,params,pattern", [
    ("zipf", {}, re.escape("unknown routing 'zipf'; allowed: ['skewed', 'table', 'uniform']")),
    (None, {}, r"unknown routing None; allowed"),
    ("uniform", {"exponent": 1.0},
     re.escape("routing 'uniform' takes parameters []; got unknown ['exponent'], missing []")),
    ("skewed", {}, re.escape("routing 'skewed' takes parameters ['exponent']; got unknown [], "
                             "missing ['exponent']")),
    ("table", {"load": [1, 1], "shares": [1, 1]}, r"got unknown \['shares'\]"),
    ("skewed", {"exponent": -2}, r"SkewedRouting\.exponent must be a finite number >= 0, got -2"),
])
def test_make_routing_bad_inputs(name, params, pattern):
    with raises(pattern):
        make_routing(name, 8, 2, **params)


@pytest.mark.parametrize("routing", [UniformRouting(16, 2), UniformRouting(8, 6),
                                     SkewedRouting(16, 4, 1.2)])
def test_groups_drawn_at_once_are_one_draw_split_by_group(routing):
    # The groups' tokens are picked one after the other with the same generator
    # calls as one draw of all of them: their counts add up to that draw exactly.
    groups = routing.draw_groups([5, 0, 9, 2], np.random.default_rng(7))
    whole = routing.draw(16, 1, np.random.default_rng(7))[0]
    assert groups.shape == (4, routing.num_experts) and groups.dtype == np.int64
    assert groups.sum(axis=0).tolist() == whole.tolist()
    assert groups.sum(axis=1).tolist() == [5 * routing.top_k, 0, 9 * routing.top_k,
                                           2 * routing.top_k]
    assert (groups <= np.array([5, 0, 9, 2])[:, None]).all()
    one = routing.draw_groups([9], np.random.default_rng(3))
    assert one.tolist() == routing.draw(9, 1, np.random.default_rng(3)).tolist()
    assert routing.draw_groups([0, 0], np.random.default_rng(0)).sum() == 0
    with pytest.raises(ValueError, match=r"draw_groups needs token counts >= 0"):
        routing.draw_groups([3, -1], np.random.default_rng(0))
