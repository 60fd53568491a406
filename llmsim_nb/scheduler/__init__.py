"""Iteration-level scheduling and the paged KV cache."""

from .kv_cache import KVCacheManager
from .plan import IterationPlan
from .request_state import RequestState, RequestStatus
from .scheduler import Scheduler

__all__ = ["KVCacheManager", "IterationPlan", "RequestState", "RequestStatus", "Scheduler"]
