from dgm.store.records import Node, StageScore, TaskResult
from dgm.store.runstore import RunStore, StoreError

__all__ = ["Node", "RunStore", "StageScore", "StoreError", "TaskResult"]
