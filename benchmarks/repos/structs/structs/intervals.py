"""Closed numeric intervals."""


def merge_intervals(intervals):
    """Merge overlapping or touching intervals: [(1, 3), (2, 5), (5, 6)] -> [(1, 6)]."""
    ordered = sorted((min(a, b), max(a, b)) for a, b in intervals)
    if not ordered:
        return []
    merged = [ordered[0]]
    for start, end in ordered[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged


def total_length(intervals):
    """Length covered by the union of the intervals."""
    return sum(end - start for start, end in merge_intervals(intervals))
