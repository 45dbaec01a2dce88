"""structs: a few data structures the standard library does not have."""

from structs.graph import CycleError, Graph
from structs.intervals import merge_intervals, total_length
from structs.lru import LRUCache

__all__ = ["CycleError", "Graph", "LRUCache", "merge_intervals", "total_length"]
