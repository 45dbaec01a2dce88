from structs import merge_intervals, total_length


def test_merge_overlapping():
    assert merge_intervals([(1, 3), (2, 5), (8, 9)]) == [(1, 5), (8, 9)]


def test_merge_touching():
    assert merge_intervals([(5, 6), (1, 3), (3, 5)]) == [(1, 6)]


def test_merge_reversed_bounds():
    assert merge_intervals([(3, 1)]) == [(1, 3)]


def test_merge_empty():
    assert merge_intervals([]) == []


def test_total_length():
    assert total_length([(0, 2), (1, 3), (10, 11)]) == 4
