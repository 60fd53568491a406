"""The device-to-host link: the GPU presets' PCIe, the original's link on NPUs,
and the flags that override either."""

from __future__ import annotations

import pytest

from llmsim_nb import SimConfig
from llmsim_nb.system import build_instance


@pytest.mark.parametrize("hardware, bandwidth, latency", [
    ("h100-sxm", 63e9, 10e-6),        # PCIe 5.0 x16
    ("a100-80gb", 31.5e9, 10e-6),     # PCIe 4.0 x16
    ("npu-128x128", 512e9, 1e-6),     # the original's memory-expansion link
])
def test_the_preset_names_the_host_link(hardware, bandwidth, latency):
    parts = build_instance(SimConfig.from_flags(model_name="gpt2", hardware=hardware))
    assert (parts.network.host_bandwidth, parts.network.host_latency) == (bandwidth, latency)


def test_flags_override_the_preset():
    parts = build_instance(SimConfig.from_flags(model_name="gpt2", hardware="h100-sxm",
                                                host_bandwidth=900e9, host_latency=2e-6))
    assert (parts.network.host_bandwidth, parts.network.host_latency) == (900e9, 2e-6)
    # One transfer of 63 MB over PCIe 5.0: 1 ms + 10 us.
    h100 = build_instance(SimConfig.from_flags(model_name="gpt2", hardware="h100-sxm"))
    assert h100.network.host_time(63e6) == pytest.approx(1e-3 + 10e-6)
