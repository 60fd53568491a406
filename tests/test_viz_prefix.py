"""The prefix-cache hit-rate plot draws the token-weighted rates (Agg backend)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from llmsim_nb import SimConfig, Simulator, viz  # noqa: E402
from llmsim_nb.workload import Trace  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def runlike(query, cached, t_end=None):
    n = len(query)
    t_end = np.arange(1, n + 1) * 0.5 if t_end is None else np.asarray(t_end, dtype=float)
    return xr.Dataset({"t_end": ("iteration", t_end),
                       "num_prefix_query_tokens": ("iteration", np.asarray(query)),
                       "num_prefix_cached_tokens": ("iteration", np.asarray(cached))})


# Lookup iterations 0, 2, 3 (iteration 1 looked nothing up): with a window of 2
# lookup iterations the rolling rate is 0/16, (0+24)/(16+32), (24+8)/(32+16);
# cumulative 0/16, 24/48, 32/64.
DS = runlike([16, 0, 32, 16], [0, 0, 24, 8], t_end=[0.5, 1.25, 2.0, 4.0])


def test_the_lines_are_the_rolling_and_cumulative_rates():
    ax = viz.plot_prefix_hit_rate(DS, window=2)
    rolling, cumulative = ax.lines[0], ax.lines[1]
    assert rolling.get_xdata().tolist() == cumulative.get_xdata().tolist() == [0.5, 2.0, 4.0]
    assert rolling.get_ydata().tolist() == [0.0, 0.5, 32 / 48]
    assert cumulative.get_ydata().tolist() == [0.0, 0.5, 0.5]
    assert "rolling (2 lookup iterations)" == rolling.get_label()
    assert ax.get_xlabel() == "simulated time"  # the ticks carry the unit: "2 s"


def test_a_window_wider_than_the_run_is_the_cumulative_rate():
    t, rolling, cumulative = viz.prefix_hit_rate_over_time(DS, window=100)
    assert t.tolist() == [0.5, 2.0, 4.0]
    assert rolling.tolist() == cumulative.tolist() == [0.0, 0.5, 0.5]
    _, one, _ = viz.prefix_hit_rate_over_time(DS, window=1)
    assert one.tolist() == [0.0, 24 / 32, 8 / 16]  # each lookup iteration alone


def test_it_draws_on_the_axes_it_is_given():
    _, ax = plt.subplots()
    assert viz.plot_prefix_hit_rate(DS, ax=ax) is ax and len(ax.lines) == 2


def test_a_run_without_prefix_lookups_is_a_clear_error():
    trace = Trace(arrival_at=np.zeros(3), num_prompt_tokens=np.full(3, 16),
                  num_output_tokens=np.full(3, 2), source="test")
    ds = Simulator(SimConfig.from_flags(model_name="gpt2"), trace).run()
    with pytest.raises(ValueError, match=r"^plot_prefix_hit_rate: the Dataset has no "
                                         r"prefix-cache lookups"):
        viz.plot_prefix_hit_rate(ds)
    assert plt.get_fignums() == []  # no empty figure left behind


def test_the_cumulative_rate_is_tokens_over_tokens_not_a_mean_of_rates():
    ds = runlike([10, 30, 0, 24], [5, 27, 0, 0])
    _, _, cumulative = viz.prefix_hit_rate_over_time(ds)
    assert cumulative[-1] == 32 / 64


@pytest.mark.parametrize("window", [0, -3, 1.5, True, "4"])
def test_bad_windows_are_refused(window):
    with pytest.raises(ValueError, match=r"^window must be an integer >= 1"):
        viz.plot_prefix_hit_rate(DS, window=window)


def test_a_dataset_without_the_variables_names_them():
    with pytest.raises(ValueError, match="num_prefix_query_tokens"):
        viz.plot_prefix_hit_rate(xr.Dataset({"t_end": ("iteration", [1.0])}))
