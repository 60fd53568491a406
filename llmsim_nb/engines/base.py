"""The execution-engine interface and its registry.

An engine times operators on one device. It is constructed from a hardware
spec, which it only stores (constructors store, methods compute). An engine
implements one verb, :meth:`Engine.time_op`; two are built on it:
:meth:`Engine.simulate` takes an :class:`~llmsim_nb.models.ops.OpBlock` and
returns a :class:`BlockTiming` (for notebooks and analysis), and
:meth:`Engine.op_totals` gives the per-operator seconds of templates on a
batch, which is what the execution stack asks for (the reuse cache answers it
from tables). An engine that overrides one of them must keep the two equal
(``check_engine`` checks it). New engines plug in by name::

    @register_engine("my_npu")
    class MyEngine(Engine):
        def time_op(self, op): ...

and every engine must pass :func:`llmsim_nb.testing.check_engine`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np

from ..models.ops import BatchShape, Op, OpBlock
from ..models.template import OpTemplate


@dataclass(frozen=True, slots=True)
class OpTiming:
    """Latency of every instance of one op.

    Attributes
    ----------
    latency : ndarray of float64
        Seconds per instance (instances run one after another on the device).
    compute_latency, memory_latency : ndarray of float64
        The compute-only and DRAM-only times each instance would take alone;
        ``latency >= max(compute, memory)``. Their ratio says which bound hit.
    """

    latency: np.ndarray
    compute_latency: np.ndarray
    memory_latency: np.ndarray

    @property
    def total(self) -> float:
        return float(self.latency.sum())

    @property
    def is_memory_bound(self) -> bool:
        return float(self.memory_latency.sum()) > float(self.compute_latency.sum())


@dataclass(frozen=True, slots=True)
class BlockTiming:
    """What :meth:`Engine.simulate` returns for one :class:`OpBlock`.

    Attributes
    ----------
    block : OpBlock
        The block that was timed.
    engine : str
        Registry name of the engine.
    ops : tuple of OpTiming
        One per ``block.ops``, same order.
    """

    block: OpBlock
    engine: str
    ops: tuple[OpTiming, ...]

    @property
    def op_latency(self) -> np.ndarray:
        """Seconds per op for one run of the block (instances summed)."""
        return np.array([t.total for t in self.ops], dtype=np.float64)

    @property
    def latency(self) -> float:
        """Seconds for one run of the block (ops run in sequence)."""
        return float(sum(t.total for t in self.ops))

    @property
    def total_latency(self) -> float:
        """Seconds for all ``block.repeat`` runs."""
        return self.latency * self.block.repeat


class Engine(ABC):
    """Base class of execution engines.

    Subclasses set ``name`` (through :func:`register_engine`) and implement
    :meth:`time_op`. ``simulate`` is shared so that every engine reports the
    same structure.
    """

    name: ClassVar[str] = "abstract"
    #: Whether timing one op instance costs more than a dictionary lookup. The
    #: reuse cache keys multi-instance ops (per-request attention) instance by
    #: instance only for such engines; a closed-form engine times a whole
    #: vectorised op faster than it could look its instances up.
    expensive: ClassVar[bool] = False
    #: Whether ``time_op`` has no side effects (no counters, no warnings), so
    #: the reuse cache may time instances nobody asked for yet: a range of
    #: token counts in one vectorised call. Off unless an engine says so.
    pure: ClassVar[bool] = False
    #: Whether each op instance is timed as if it ran alone (to the bit). The
    #: reuse cache relies on it and refuses an engine that says otherwise (a
    #: PIM, whose requests share channels); ``check_engine`` checks the claim.
    independent_instances: ClassVar[bool] = True

    def __init__(self, spec: Any) -> None:
        self.spec = spec

    @abstractmethod
    def time_op(self, op: Op) -> OpTiming:
        """Time every instance of ``op`` on this device."""

    def simulate(self, block: OpBlock) -> BlockTiming:
        """Time each op of ``block``; one run of the block (see ``BlockTiming``)."""
        return BlockTiming(block, self.name, tuple(self.time_op(op) for op in block.ops))

    def op_totals(self, templates: tuple[OpTemplate, ...], batch: BatchShape,
                  dtype_bytes: int, num_rows: int | None = None) -> np.ndarray:
        """Seconds per operator of ``templates`` built for ``batch``, instances summed.

        The same floats as ``simulate(block).op_latency`` for the block of
        those operators (``num_rows`` overrides the token count, as
        :meth:`~llmsim_nb.models.template.OpTemplate.instantiate`). The
        execution stack times iterations through this method, so a wrapper
        such as the reuse cache can answer without building the operators.
        """
        return np.array([self.time_op(t.instantiate(batch, dtype_bytes, num_rows)).total
                         for t in templates], dtype=np.float64)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


class WrappedEngine(Engine):
    """An engine that times through ``inner`` and changes its timings.

    It keeps the wrapped engine's name, spec and contract flags (``expensive``,
    ``pure``, ``independent_instances``), so it sits under the reuse cache like
    the engine it wraps; subclasses implement :meth:`Engine.time_op` on
    ``self.inner.time_op``.
    """

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine.spec)
        self.inner = engine
        self.name = engine.name
        self.expensive = engine.expensive
        self.pure = engine.pure
        self.independent_instances = engine.independent_instances


def check_engine_argument(engine: object, caller: str = "Simulator") -> None:
    """Refuse anything but an :class:`Engine` instance (or None) as ``caller``'s
    ``engine`` argument.

    Raises
    ------
    TypeError
        Saying what was given and what is expected (an engine class or a
        registry name gets a hint on how to pass it).
    """
    if engine is None or isinstance(engine, Engine):
        return
    if isinstance(engine, str):
        raise TypeError(f"{caller}(engine={engine!r}): engine must be an Engine instance, not "
                        f"a name; choose engines by name through the hardware preset "
                        f"(SimConfig hardware) or pass get_engine_class({engine!r})(spec); "
                        f"registered engines: {sorted(ENGINES)}")
    if isinstance(engine, type) and issubclass(engine, Engine):
        raise TypeError(f"{caller}(engine={engine.__name__}): engine must be an Engine "
                        f"instance, not a class; pass {engine.__name__}(spec)")
    raise TypeError(f"{caller}(engine=...): engine must be an Engine instance or None, got "
                    f"{type(engine).__name__}")


ENGINES: dict[str, type[Engine]] = {}


def register_engine(name: str) -> Callable[[type[Engine]], type[Engine]]:
    """Class decorator adding an engine to :data:`ENGINES` under ``name``."""

    def decorate(cls: type[Engine]) -> type[Engine]:
        if name in ENGINES and ENGINES[name] is not cls:
            raise ValueError(f"an engine named {name!r} is already registered")
        cls.name = name
        ENGINES[name] = cls
        return cls

    return decorate


def get_engine_class(name: str) -> type[Engine]:
    """The engine class registered as ``name``; a clear error lists the known ones."""
    try:
        return ENGINES[name]
    except KeyError:
        raise ValueError(f"engine={name!r} is not a registered engine; known engines: "
                         f"{sorted(ENGINES)}") from None
