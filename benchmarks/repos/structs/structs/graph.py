"""A small directed/undirected graph with the usual algorithms.

Nodes are any hashable values. Edges carry a numeric weight (default 1). The graph keeps
insertion order, so every algorithm here is deterministic: ties are broken by the order
in which nodes and edges were added.
"""

import heapq
from collections import deque

__all__ = ["Graph", "CycleError", "NoPathError"]


class CycleError(ValueError):
    """The graph has a cycle where an acyclic graph was required."""

    def __init__(self, cycle):
        self.cycle = cycle
        super().__init__("cycle: " + " -> ".join(map(str, cycle)))


class NoPathError(LookupError):
    """No path exists between the two nodes."""


class Graph:
    def __init__(self, directed=True):
        self.directed = directed
        self._adj = {}

    # ------------------------------------------------------------ building

    def add_node(self, node):
        self._adj.setdefault(node, {})

    def add_edge(self, source, target, weight=1):
        if weight < 0:
            raise ValueError("negative weights are not supported")
        self.add_node(source)
        self.add_node(target)
        self._adj[source][target] = weight
        if not self.directed:
            self._adj[target][source] = weight

    def remove_edge(self, source, target):
        try:
            del self._adj[source][target]
            if not self.directed:
                del self._adj[target][source]
        except KeyError:
            raise KeyError(f"no edge {source!r} -> {target!r}") from None

    @classmethod
    def from_edges(cls, edges, directed=True):
        graph = cls(directed=directed)
        for edge in edges:
            graph.add_edge(*edge)
        return graph

    # ------------------------------------------------------------ inspection

    def nodes(self):
        return list(self._adj)

    def edges(self):
        seen = set()
        out = []
        for source, targets in self._adj.items():
            for target, weight in targets.items():
                key = (source, target) if self.directed else frozenset((source, target))
                if key in seen:
                    continue
                seen.add(key)
                out.append((source, target, weight))
        return out

    def neighbors(self, node):
        return list(self._adj[node])

    def degree(self, node):
        return len(self._adj[node])

    def __contains__(self, node):
        return node in self._adj

    def __len__(self):
        return len(self._adj)

    # ------------------------------------------------------------ traversal

    def bfs(self, start):
        seen = {start}
        order = []
        queue = deque([start])
        while queue:
            node = queue.popleft()
            order.append(node)
            for nxt in self._adj[node]:
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
        return order

    def dfs(self, start):
        seen = set()
        order = []
        stack = [start]
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            order.append(node)
            # Reverse so that the first-added neighbour is visited first.
            stack.extend(reversed([n for n in self._adj[node] if n not in seen]))
        return order

    # ------------------------------------------------------------ algorithms

    def topological_sort(self):
        """Kahn's algorithm; raises CycleError naming one cycle if the graph is not a DAG."""
        if not self.directed:
            raise ValueError("topological sort needs a directed graph")
        indegree = {node: 0 for node in self._adj}
        for targets in self._adj.values():
            for target in targets:
                indegree[target] += 1
        ready = deque(node for node, deg in indegree.items() if deg == 0)
        order = []
        while ready:
            node = ready.popleft()
            order.append(node)
            for target in self._adj[node]:
                indegree[target] -= 1
                if indegree[target] == 0:
                    ready.append(target)
        if len(order) != len(self._adj):
            raise CycleError(self._find_cycle({n for n, d in indegree.items() if d > 0}))
        return order

    def _find_cycle(self, candidates):
        # Walk backwards-free: from any remaining node, follow edges inside the remaining
        # set until a node repeats; the repeated stretch is a cycle.
        node = next(n for n in self._adj if n in candidates)
        path = []
        position = {}
        while node not in position:
            position[node] = len(path)
            path.append(node)
            node = next(t for t in self._adj[node] if t in candidates)
        return path[position[node]:] + [node]

    def shortest_path(self, start, goal):
        """Dijkstra. Returns (total weight, [start, ..., goal])."""
        if start not in self._adj or goal not in self._adj:
            raise KeyError(f"unknown node {start if start not in self._adj else goal!r}")
        best = {start: 0}
        previous = {}
        counter = 0  # tie-breaker so the heap never compares nodes
        heap = [(0, counter, start)]
        done = set()
        while heap:
            dist, _, node = heapq.heappop(heap)
            if node in done:
                continue
            done.add(node)
            if node == goal:
                break
            for nxt, weight in self._adj[node].items():
                candidate = dist + weight
                if candidate < best.get(nxt, float("inf")):
                    best[nxt] = candidate
                    previous[nxt] = node
                    counter += 1
                    heapq.heappush(heap, (candidate, counter, nxt))
        if goal not in best:
            raise NoPathError(f"no path from {start!r} to {goal!r}")
        path = [goal]
        while path[-1] != start:
            path.append(previous[path[-1]])
        path.reverse()
        return best[goal], path

    def connected_components(self):
        """Components of the underlying undirected graph, each in insertion order."""
        undirected = {node: set() for node in self._adj}
        for source, targets in self._adj.items():
            for target in targets:
                undirected[source].add(target)
                undirected[target].add(source)
        seen = set()
        components = []
        for node in self._adj:
            if node in seen:
                continue
            component = []
            queue = deque([node])
            seen.add(node)
            while queue:
                current = queue.popleft()
                component.append(current)
                for nxt in undirected[current]:
                    if nxt not in seen:
                        seen.add(nxt)
                        queue.append(nxt)
            order = {n: i for i, n in enumerate(self._adj)}
            components.append(sorted(component, key=order.__getitem__))
        return components

    def has_path(self, start, goal):
        try:
            self.shortest_path(start, goal)
        except NoPathError:
            return False
        return True

    def copy(self):
        clone = Graph(directed=self.directed)
        for node, targets in self._adj.items():
            clone._adj[node] = dict(targets)
        return clone

    def reversed(self):
        """A copy with every edge flipped (same graph when undirected)."""
        if not self.directed:
            return self.copy()
        flipped = Graph(directed=True)
        for node in self._adj:
            flipped.add_node(node)
        for source, target, weight in self.edges():
            flipped.add_edge(target, source, weight)
        return flipped
