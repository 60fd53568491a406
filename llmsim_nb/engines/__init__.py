"""Execution engines: how long each operator takes on a device.

An engine knows operators (shapes, FLOPs, bytes: :mod:`llmsim_nb.models.ops`)
and hardware, never requests. Engines are plug-ins found by name in a registry
(:func:`~.base.register_engine`, :func:`~.base.get_engine_class`); every one
passes :func:`llmsim_nb.testing.check_engine`.

- :mod:`.base`: the ``Engine`` interface, ``OpTiming`` / ``BlockTiming``, the registry.
- :mod:`.hardware`: hardware presets (``presets/hardware.yaml``) -> an engine and its spec.
- :mod:`.npu`, :mod:`.npu_detailed`: the systolic-array NPU, closed form and tile by tile.
- :mod:`.gpu` (a package: engine, spec, memory, gemm, attention, vector): the
  datasheet-and-efficiency GPU model.
- :mod:`.pim`: HBM-PIM DRAM command timing; :mod:`.mapping`: which ops go to the PIM.
- :mod:`.profiled` and :mod:`.measurements` (a package, one module per format):
  timing from measured tables.
- :mod:`.reuse` (a package: engine, cache, keys, file, archive): reuse of
  operator timings across layers, iterations and runs.
- :mod:`.stack`, :mod:`.hetero`, :mod:`.op_schedule`: time a whole batch on one
  device's shard ("compile one block and replicate it"), with NPU + PIM overlap.

Importing this package imports no engine; ``llmsim_nb.engines.hardware`` and
the system builder import the ones a configuration needs.
"""
