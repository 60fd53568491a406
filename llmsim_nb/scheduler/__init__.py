"""Iteration-level scheduling and the paged KV cache."""

from .block_hasher import BlockHasher
from .kv_cache import KVCacheManager
from .plan import IterationPlan
from .prefix_cache import PrefixCachingKVManager
from .request_state import RequestState, RequestStatus
from .scheduler import Scheduler
from .v1_scheduler import V1Scheduler

__all__ = ["BlockHasher", "KVCacheManager", "IterationPlan", "PrefixCachingKVManager",
           "RequestState", "RequestStatus", "Scheduler", "V1Scheduler"]
