"""Measured against simulated throughput over time (``llmsim validate``'s curves)."""

from __future__ import annotations

from ._axes import legend_outside


def plot_curves(measured, simulated, ax=None):
    """Plot measured and simulated prompt / generation throughput, one panel each.

    Parameters
    ----------
    measured, simulated : Curve
        From :func:`~llmsim_nb.fidelity.validate.load_throughput_curve` and
        :func:`~llmsim_nb.fidelity.validate.simulated_curve`.
    ax : sequence of two matplotlib Axes, optional

    Returns
    -------
    The two Axes.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(2, 1, sharex=True, figsize=(7, 5), layout="constrained")
    for axis, name in zip(ax, ("prompt", "generation")):
        axis.step(measured.start, getattr(measured, name), where="post", label="measured")
        axis.step(simulated.start, getattr(simulated, name), where="post", label="simulated")
        axis.set_ylabel(f"{name} tokens/s")
        legend_outside(axis)
    ax[-1].set_xlabel("time (s)")
    return ax
