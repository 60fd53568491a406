"""Request routers: which instance of a cluster serves an arriving request.

A router sees one :class:`~.instance_state.InstanceState` per instance and
returns the chosen instance's ``index``. Routers are plug-ins found by name in
:data:`ROUTERS` (as engines are)::

    @register_router
    class MyRouter(Router):
        name = "my_router"

        def _route(self, request, states):
            return states[0].index

and :func:`get_router` builds one from a name (or wraps a plain function
``f(request, states) -> int``). Constructors only store and check their
parameters; :meth:`Router.route` computes. The registered routers (in
:mod:`.routers`, registered when the package is imported):

- ``round_robin``: instances in turn.
- ``random``: uniformly at random, from an explicit ``numpy.random.Generator``.
- ``least_outstanding``: fewest unfinished requests (vLLM production-stack's
  and llm-d's "least requests").
- ``least_kv``: lowest KV-cache usage.
- ``prefix_aware``: the longest cached prefix among instances not much busier
  than the least busy one (SGLang's cache-aware router and llm-d's prefix
  scorer weigh the same two things).

Ties are broken by fewer outstanding requests, then by the lowest index, so
every router but ``random`` is a pure function of what it sees (and of its
cursor, for ``round_robin``). Routers know only InstanceState, never the
instance or scheduler packages.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Sequence
from numbers import Integral
from typing import TYPE_CHECKING, Any, ClassVar

from .instance_state import InstanceState

if TYPE_CHECKING:  # annotations only: routers need nothing of a Request at run time
    import numpy as np

    from ..workload.request import Request
    from .pool_view import PoolView

__all__ = ["ROUTERS", "CallableRouter", "Router", "get_router", "register_router"]


def _is_int(value: object) -> bool:
    """True for Python and numpy integers, never for ``bool``."""
    return isinstance(value, Integral) and not isinstance(value, bool)


class Router:
    """Chooses the instance that serves each request.

    Subclasses set :attr:`name`, store (and check) their parameters in
    ``__init__`` under the same names, and implement :meth:`_route`;
    :meth:`route` checks ``states`` first. A router that keeps state between
    calls (a cursor) clears it in :meth:`reset`.
    """

    name: ClassVar[str] = ""
    #: Whether :func:`get_router` passes its ``rng`` to the constructor.
    uses_rng: ClassVar[bool] = False
    #: Whether the cluster should fill ``InstanceState.cached_prefix_tokens``
    #: (a prefix-cache lookup per instance and request: only for routers that read it).
    uses_prefix_cache: ClassVar[bool] = False

    def route(self, request: Request, states: Sequence[InstanceState]) -> int:
        """The ``index`` of the instance that gets ``request``.

        Parameters
        ----------
        request : Request
            The arriving request (only user callables look at it).
        states : sequence of InstanceState
            One snapshot per candidate instance; not modified.

        Returns
        -------
        int
            The ``index`` of one of ``states``.

        Raises
        ------
        ValueError
            If ``states`` is empty, or the router chose none of them.
        TypeError
            If an element of ``states`` is not an InstanceState.
        """
        if len(states) == 0:
            raise ValueError(f"router {self.name!r}: states is empty; a request needs at least "
                             f"one instance to go to")
        for s in states:
            if not isinstance(s, InstanceState):
                i = next(j for j, x in enumerate(states) if not isinstance(x, InstanceState))
                raise TypeError(f"router {self.name!r}: states[{i}] is a {type(s).__name__}; "
                                f"each must be an InstanceState")
        chosen = self._route(request, states)
        if type(chosen) is int:  # the usual answer, accepted without the checks below
            for s in states:
                if s.index == chosen:
                    return chosen
        allowed = [s.index for s in states]
        if not _is_int(chosen) or int(chosen) not in allowed:
            lo, hi = min(allowed), max(allowed)
            span = (f"{lo}..{hi}" if sorted(allowed) == list(range(lo, hi + 1))
                    else f"one of {sorted(allowed)}")
            raise ValueError(f"{self._label()} returned {chosen!r}; it must return the int "
                             f"index of one of the {len(states)} instances given ({span})")
        return int(chosen)

    def route_pool(self, request: Request, view: PoolView) -> int:
        """The ``index`` of the instance of ``view.pool`` that gets ``request``.

        What the cluster calls. A router whose choice reads only the view's
        columns (the built-in ones but ``prefix_aware``) picks from them
        directly, in :meth:`_route_view`, with the same answer as
        :meth:`route` on the view's states; every other router (a subclass
        that overrides :meth:`_route`, a function) gets
        ``route(request, view.states())``.
        """
        if self._uses_view:
            return self._route_view(request, view)
        return self.route(request, view.states())

    #: Whether :meth:`route_pool` may use :meth:`_route_view` (set per class:
    #: true where the class's nearest ``_route_view`` is not above its nearest
    #: ``_route`` or ``route``, so a subclass that overrides either is honoured).
    _uses_view: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for klass in cls.__mro__:
            if "_route_view" in klass.__dict__ and klass is not Router:
                cls._uses_view = True
                break
            if "_route" in klass.__dict__ or "route" in klass.__dict__:
                cls._uses_view = False
                break

    def _label(self) -> str:
        """How errors name this router."""
        return f"router {self.name!r}"

    def _route(self, request: Request, states: Sequence[InstanceState]) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement _route")

    def _route_view(self, request: Request, view: PoolView) -> int:
        raise NotImplementedError  # only classes with _uses_view define it

    def reset(self) -> None:
        """Forget what earlier calls left (nothing, unless the router has a cursor)."""

    def get_params(self) -> dict[str, Any]:
        """The constructor's parameters as stored (scikit-learn style), for reprs and results."""
        return {p: getattr(self, p) for p in _parameters(type(self))}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items()
                         if k != "rng")  # a Generator's repr says nothing useful
        return f"{type(self).__name__}({args})"


def _parameters(cls: type[Router]) -> list[str]:
    """Names of the keyword parameters ``cls.__init__`` takes."""
    if cls.__init__ is object.__init__:
        return []
    sig = inspect.signature(cls.__init__)
    return [p.name for p in list(sig.parameters.values())[1:]
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


ROUTERS: dict[str, type[Router]] = {}


def register_router(cls: type[Router]) -> type[Router]:
    """Class decorator adding ``cls`` to :data:`ROUTERS` under ``cls.name``.

    Raises
    ------
    ValueError
        If ``cls`` is not a Router subclass with a non-empty ``name``, or if
        another class is already registered under that name.
    """
    if not (isinstance(cls, type) and issubclass(cls, Router)):
        raise ValueError(f"register_router expects a Router subclass, got {cls!r}")
    name = cls.name
    if not isinstance(name, str) or not name:
        raise ValueError(f"router class {cls.__name__} must set a non-empty str name, got "
                         f"{name!r}")
    if name in ROUTERS and ROUTERS[name] is not cls:
        raise ValueError(f"a router named {name!r} is already registered "
                         f"({ROUTERS[name].__name__})")
    ROUTERS[name] = cls
    return cls


def _did_you_mean(word: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(word.replace("-", "_").lower(), list(candidates), n=3,
                                      cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def get_router(name_or_callable: str | Callable[..., int] | type[Router] | Router, *,
               rng: np.random.Generator | None = None, **params: Any) -> Router:
    """A router from its registered name, a Router class or a function.

    Parameters
    ----------
    name_or_callable : str, Router subclass, Router or callable
        A key of :data:`ROUTERS`; a Router subclass (built with ``params``); a
        Router instance (returned as is; no ``params`` then); or a function
        ``f(request, states) -> index``, wrapped in a :class:`CallableRouter`.
    rng : numpy.random.Generator, optional
        Given to routers that draw random numbers (``random`` requires it);
        ignored by the others, so a cluster may always pass its generator.
    **params
        The router's parameters (e.g. ``load_cap`` of ``prefix_aware``).

    Raises
    ------
    ValueError
        For an unknown name (the known ones are listed, with a close match), a
        parameter the router does not take, a bad parameter value, or
        ``random`` without ``rng``.
    TypeError
        If ``name_or_callable`` is none of the above.
    """
    target = name_or_callable
    if isinstance(target, Router):
        if params:
            raise ValueError(f"get_router({target!r}) takes no parameters for a router that is "
                             f"already built, got {sorted(params)}")
        return target
    if isinstance(target, str):
        if target not in ROUTERS:
            raise ValueError(f"router={target!r} is not a registered router; known routers: "
                             f"{sorted(ROUTERS)}{_did_you_mean(target, sorted(ROUTERS))}")
        cls = ROUTERS[target]
    elif isinstance(target, type) and issubclass(target, Router):
        cls = target
    elif callable(target):
        cls, params = CallableRouter, {"fn": target, **params}
    else:
        raise TypeError(f"router={target!r} must be a router name (one of {sorted(ROUTERS)}), "
                        f"a Router or a callable f(request, states) -> index")
    allowed = [p for p in _parameters(cls) if p != "rng"]
    for key in params:
        if key not in allowed:
            takes = f"its parameters: {allowed}" if allowed else "it takes none"
            raise ValueError(f"router {cls.name!r} has no parameter {key!r}; {takes}"
                             f"{_did_you_mean(key, allowed)}")
    if cls.uses_rng:
        params["rng"] = rng
    return cls(**params)


class CallableRouter(Router):
    """A user function ``fn(request, states) -> index`` as a router.

    The function gets the states as a tuple (so it cannot reorder the
    cluster's list) and must return the ``index`` of one of them.

    Parameters
    ----------
    fn : callable
        ``fn(request, states) -> int``.
    """

    name = "callable"
    uses_prefix_cache = True  # a user function may read it

    def __init__(self, fn: Callable[..., int]) -> None:
        if not callable(fn):
            raise ValueError(f"CallableRouter: fn={fn!r} must be a callable "
                             f"f(request, states) -> index")
        self.fn = fn

    def _route(self, request: Request, states: Sequence[InstanceState]) -> int:
        return self.fn(request, tuple(states))  # checked by route()

    def _label(self) -> str:
        return f"router function {getattr(self.fn, '__qualname__', None) or repr(self.fn)}"

    def __repr__(self) -> str:
        return f"CallableRouter({getattr(self.fn, '__qualname__', None) or self.fn!r})"
