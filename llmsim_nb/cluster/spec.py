"""ClusterConfig: which instances a cluster has and how requests reach them.

A cluster is groups of equal instances, each group built from its own
:class:`~llmsim_nb.config.SimConfig` (model, hardware, parallelism,
scheduler, memory), so instances may differ (an H100 group beside an A100
group). Requests reach the instances through one router
(:mod:`llmsim_nb.cluster.router`), which sees every instance's state as it
was ``router_staleness`` seconds before the request arrives (real routers read
metrics that lag).

The same description is a YAML file (:func:`load_cluster_config`)::

    base: {model_name: llama-3.1-8b, hardware: h100-sxm}   # flags every group shares
    instances:
      - {name: h100, count: 4}                             # 4 instances of the base
      - {name: a100, count: 2, flags: {hardware: a100-80gb}}
    router: least_outstanding
    router_params: {}
    router_staleness: 0.0

Everything is checked on construction, before anything runs; an error names
the group and the key.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import SimConfig

#: Keys of a cluster YAML file and of one instance group in it.
CLUSTER_KEYS = ("base", "instances", "router", "router_params", "router_staleness",
                "decode_router", "decode_router_params", "kv_link")
GROUP_KEYS = ("name", "count", "flags", "role")
#: What a group's instances do: serve requests whole, or one side of
#: prefill/decode disaggregation.
ROLES = ("mixed", "prefill", "decode")


@dataclass(frozen=True)
class InstanceGroup:
    """``count`` equal instances built from ``config``.

    Attributes
    ----------
    name : str
        Names the group's instances (``name-0``, ``name-1``, ...) and its
        errors.
    config : SimConfig
    count : int
    role : {"mixed", "prefill", "decode"}
        ``mixed``: requests from prompt to last token; ``prefill``: the prompt
        and first token, then the KV goes to a ``decode`` instance.
    """

    name: str
    config: SimConfig = field(default_factory=SimConfig)
    count: int = 1
    role: str = "mixed"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or not self.name.replace(
                "-", "").replace("_", "").isalnum():
            raise ValueError(f"instance group name={self.name!r} must be a non-empty string of "
                             f"letters, digits, '-' and '_'")
        if not isinstance(self.config, SimConfig):
            raise ValueError(f"instance group {self.name!r}: config must be a SimConfig, got "
                             f"{type(self.config).__name__}")
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 1:
            raise ValueError(f"instance group {self.name!r}: count={self.count!r} must be an "
                             f"integer >= 1")
        if self.role not in ROLES:
            raise ValueError(f"instance group {self.name!r}: role={self.role!r} is not one of "
                             f"{list(ROLES)}")


@dataclass(frozen=True)
class ClusterConfig:
    """Instance groups, the router and how stale its view is.

    Attributes
    ----------
    groups : tuple of InstanceGroup
        In order; instance ``k`` of the cluster is counted across them.
    router : str
        A registered router (:func:`llmsim_nb.cluster.router.get_router`).
    router_params : dict
        Parameters of the router (e.g. ``load_cap`` of ``prefix_aware``).
    router_staleness : float
        The router sees each instance as it was this many seconds before the
        request arrives (>= 0).
    seed : int
        Seeds the ``random`` router's generator.
    decode_router, decode_router_params
        Prefill/decode disaggregation: the router that picks a decode instance
        for each prefilled request, and its parameters.
    kv_link : str
        The interconnect KV transfers cross between a prefill and a decode
        instance (:data:`llmsim_nb.network.interconnect.INTERCONNECTS`: e.g.
        ``nvlink4`` within a server, ``ib-ndr400`` across servers).
    """

    groups: tuple[InstanceGroup, ...]
    router: str = "round_robin"
    router_params: dict = field(default_factory=dict)
    router_staleness: float = 0.0
    seed: int = 0
    decode_router: str = "round_robin"
    decode_router_params: dict = field(default_factory=dict)
    kv_link: str = "ib-ndr400"

    def __post_init__(self) -> None:
        groups = tuple(self.groups) if isinstance(self.groups, (list, tuple)) else self.groups
        if not isinstance(groups, tuple) or not groups:
            raise ValueError("ClusterConfig.groups must be a non-empty sequence of "
                             "InstanceGroup (a cluster needs at least one instance)")
        object.__setattr__(self, "groups", groups)
        names = [g.name for g in groups]
        for g in groups:
            if not isinstance(g, InstanceGroup):
                raise ValueError(f"ClusterConfig.groups holds {type(g).__name__}; each must be "
                                 f"an InstanceGroup")
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"instance group names must differ; {twice} appear more than once")
        if not isinstance(self.router, str) and not callable(self.router):
            raise ValueError(f"router={self.router!r} must be a router name or a callable "
                             f"router(request, states) -> index")
        if not isinstance(self.router_params, dict):
            raise ValueError(f"router_params={self.router_params!r} must be a mapping of "
                             f"parameter names to values")
        s = self.router_staleness
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not math.isfinite(s) \
                or s < 0:
            raise ValueError(f"router_staleness={s!r} must be a finite number of seconds >= 0")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed={self.seed!r} must be an integer >= 0")
        if not isinstance(self.decode_router_params, dict):
            raise ValueError(f"decode_router_params={self.decode_router_params!r} must be a "
                             f"mapping of parameter names to values")
        from ..network.interconnect import get_interconnect

        try:
            get_interconnect(self.kv_link)
        except ValueError as exc:
            raise ValueError(f"kv_link={self.kv_link!r}: {exc}") from None
        self._check_pools()

    def _check_pools(self) -> None:
        roles = {g.role for g in self.groups}
        if roles == {"mixed"}:
            return
        if "mixed" in roles or roles != {"prefill", "decode"}:
            raise ValueError(f"prefill/decode disaggregation needs prefill and decode groups "
                             f"and no mixed ones; the groups' roles are "
                             f"{[(g.name, g.role) for g in self.groups]}")
        models = {g.config.model for g in self.groups}
        if len(models) > 1:
            raise ValueError(f"prefill and decode instances must serve one model (the KV "
                             f"moves between them); the groups name {sorted(models)}")

    @property
    def is_disaggregated(self) -> bool:
        """Whether the cluster has prefill and decode pools."""
        return any(g.role != "mixed" for g in self.groups)

    def instance_roles(self) -> list[str]:
        """Every instance's role, in cluster order."""
        return [g.role for g in self.groups for _ in range(g.count)]

    @property
    def num_instances(self) -> int:
        return sum(g.count for g in self.groups)

    def instance_names(self) -> list[str]:
        """``group-k`` for every instance, in cluster order."""
        return [f"{g.name}-{k}" for g in self.groups for k in range(g.count)]

    def instance_configs(self) -> list[SimConfig]:
        """Every instance's config, in cluster order."""
        return [g.config for g in self.groups for _ in range(g.count)]

    def to_dict(self) -> dict[str, Any]:
        """A plain description (for Dataset attrs): group names, counts and flags."""
        return {"groups": [{"name": g.name, "count": g.count, "role": g.role,
                            "flags": g.config.to_flags()} for g in self.groups],
                "decode_router": (self.decode_router if isinstance(self.decode_router, str)
                                  else repr(self.decode_router)),
                "decode_router_params": dict(self.decode_router_params),
                "kv_link": self.kv_link,
                "router": self.router if isinstance(self.router, str) else repr(self.router),
                "router_params": dict(self.router_params),
                "router_staleness": float(self.router_staleness), "seed": self.seed}


def _group(at: str, raw: Any, base: dict) -> InstanceGroup:
    if not isinstance(raw, dict):
        raise ValueError(f"{at} must be a mapping with keys {list(GROUP_KEYS)}, got {raw!r}")
    unknown = [k for k in raw if k not in GROUP_KEYS]
    if unknown:
        raise ValueError(f"{at}: unknown key {unknown[0]!r}; allowed: {list(GROUP_KEYS)}")
    if "name" not in raw:
        raise ValueError(f"{at} needs a 'name'")
    name = raw["name"]
    flags = raw.get("flags", {}) or {}
    if not isinstance(flags, dict):
        raise ValueError(f"{at} ({name!r}): flags must be a mapping of llmsim run flags, "
                         f"got {flags!r}")
    try:
        config = SimConfig.from_flags(**{**base, **flags})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"instance group {name!r}: {exc}") from None
    return InstanceGroup(name, config, raw.get("count", 1), raw.get("role", "mixed"))


def cluster_config_from_dict(doc: Any, where: str = "cluster config") -> ClusterConfig:
    """A :class:`ClusterConfig` from the YAML file's mapping (see the module docstring)."""
    if not isinstance(doc, dict):
        raise ValueError(f"{where} must be a mapping with keys {list(CLUSTER_KEYS)}")
    unknown = [k for k in doc if k not in CLUSTER_KEYS]
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}; allowed: {list(CLUSTER_KEYS)}")
    base = doc.get("base", {}) or {}
    if not isinstance(base, dict):
        raise ValueError(f"{where}: base must be a mapping of llmsim run flags, got {base!r}")
    raw = doc.get("instances")
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{where}: instances must be a non-empty list of instance groups")
    groups = tuple(_group(f"{where}: instances[{i}]", g, base) for i, g in enumerate(raw))
    seed = groups[0].config.seed
    try:
        return ClusterConfig(groups, router=doc.get("router", "round_robin"),
                             router_params=doc.get("router_params", {}) or {},
                             router_staleness=doc.get("router_staleness", 0.0), seed=seed,
                             decode_router=doc.get("decode_router", "round_robin"),
                             decode_router_params=doc.get("decode_router_params", {}) or {},
                             kv_link=doc.get("kv_link", "ib-ndr400"))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def cluster_config_from_description(description: Any,
                                    where: str = "cluster description") -> ClusterConfig:
    """The inverse of :meth:`ClusterConfig.to_dict`: the cluster a description names.

    Parameters
    ----------
    description : mapping or str
        ``config.to_dict()``, or its JSON text (what a sweep sends to a worker):
        ``groups`` (each ``name``, ``count``, ``role`` and ``flags``, the group's
        ``llmsim run`` flags), ``router``, ``router_params``,
        ``router_staleness``, ``seed``, ``decode_router``,
        ``decode_router_params`` and ``kv_link``; a key left out takes its
        default.
    where : str
        What errors name.

    Returns
    -------
    ClusterConfig
        ``cluster_config_from_description(c.to_dict()) == c`` for every
        cluster whose router is a name and whose groups' configs are what their
        flags build (any cluster built from flags or a cluster YAML file).

    Raises
    ------
    ValueError
        One line naming the key, the group or the text that is wrong.
    """
    import json

    keys = ("groups", "router", "router_params", "router_staleness", "seed", "decode_router",
            "decode_router_params", "kv_link")
    if isinstance(description, (str, bytes, bytearray)):
        try:
            description = json.loads(description)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"{where} is not valid JSON: "
                             f"{(str(exc).splitlines() or [type(exc).__name__])[0]}") from None
    if not isinstance(description, dict):
        raise ValueError(f"{where} must be a mapping with keys {list(keys)}, got "
                         f"{type(description).__name__}")
    unknown = [k for k in description if k not in keys]
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}; allowed: {list(keys)}")
    raw = description.get("groups")
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{where}: groups must be a non-empty list of instance groups, got "
                         f"{raw!r}")
    groups = tuple(_group(f"{where}: groups[{i}]", g, {}) for i, g in enumerate(raw))
    try:
        return ClusterConfig(groups, **{k: description[k] for k in keys[1:]
                                        if k in description})
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def load_cluster_config(path: str | Path) -> ClusterConfig:
    """Read a cluster YAML file; errors name the file."""
    from ..config.yaml_file import strict_yaml_loader

    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cluster config {str(path)!r} cannot be read: {exc.strerror}") from None
    try:
        doc = yaml.load(text, Loader=strict_yaml_loader())
    except (yaml.YAMLError, ValueError) as exc:
        raise ValueError(f"cluster config {str(path)!r} is not valid YAML: "
                         f"{str(exc).splitlines()[0]}") from None
    return cluster_config_from_dict(doc, where=f"cluster config {str(path)!r}")


def replace_group(cluster: ClusterConfig, name: str, /, **changes) -> ClusterConfig:
    """``cluster`` with group ``name`` changed (``count=...``, ``config=...``, ``role=...``)."""
    if name not in [g.name for g in cluster.groups]:
        raise ValueError(f"no instance group {name!r}; groups: {[g.name for g in cluster.groups]}")
    return dataclasses.replace(cluster, groups=tuple(
        dataclasses.replace(g, **changes) if g.name == name else g for g in cluster.groups))
