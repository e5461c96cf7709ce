"""inference/grouping: per-slice detections linked into 3D lesions, rule by rule."""
import numpy as np
import pytest

from acsdet.inference import GroupingRule, SliceDetection, group_detections


def _d(k, box, score=0.9):
    return SliceDetection(k, np.array(box, float), score)


def test_grouping_links_adjacent_slices_splits_gaps_and_keeps_two_lesions_apart():
    dets = [
        _d(3, [10, 10, 30, 30], 0.6),
        _d(4, [11, 10, 31, 30], 0.9),  # the same lesion, key slice 4
        _d(5, [12, 11, 31, 31], 0.7),
        _d(4, [60, 60, 80, 80], 0.8),  # a second lesion on slice 4
        _d(8, [10, 10, 30, 30], 0.5),  # after a gap (slices 6, 7): a third lesion
        _d(5, [40, 40, 50, 50], 0.4),  # no overlap with anything
    ]
    lesions = group_detections(dets)
    assert [les.slice_range for les in lesions] == [(3, 5), (4, 4), (8, 8), (5, 5)]
    assert lesions[0].key.slice_index == 4 and lesions[0].score == 0.9
    np.testing.assert_allclose(lesions[0].box_3d(), [10, 10, 3, 31, 31, 5])
    # an IoU just under the threshold does not link
    assert len(group_detections([_d(1, [0, 0, 10, 10]), _d(2, [4, 0, 14, 10])])) == 2
    assert len(group_detections([_d(1, [0, 0, 10, 10]), _d(2, [3, 0, 13, 10])])) == 1
    # without the gap bridge (max_gap=0) slices 5 and 8 end and start lesions as before
    assert len(group_detections(dets, rule=GroupingRule(max_gap=0))) == 4


def test_grouping_bridges_a_missed_slice_but_not_two():
    """A lesion missed on one slice stays one lesion; a gap of two slices makes two."""
    one_gap = [_d(k, [10, 10, 30, 30]) for k in (2, 3, 5, 6)]
    assert [les.slice_range for les in group_detections(one_gap)] == [(2, 6)]
    assert len(group_detections(one_gap, rule=GroupingRule(max_gap=0))) == 2
    two_gap = [_d(k, [10, 10, 30, 30]) for k in (2, 3, 6, 7)]
    assert len(group_detections(two_gap)) == 2
    assert len(group_detections(two_gap, rule=GroupingRule(max_gap=2))) == 1


def test_grouping_keeps_a_lesions_small_end_sections_by_containment():
    """A lesion's last slice shows a small section inside the previous box (IoU 0.16 < 0.5):
    linked by containment (intersection over the smaller 1.0 >= 0.8), not without it."""
    dets = [_d(3, [10, 10, 30, 30], 0.9), _d(4, [16, 16, 24, 24], 0.6)]
    assert len(group_detections(dets)) == 1
    assert len(group_detections(dets, rule=GroupingRule(contain_thr=None))) == 2
    beside = [_d(3, [10, 10, 30, 30], 0.9), _d(4, [26, 16, 34, 24], 0.6)]  # half outside
    assert len(group_detections(beside)) == 2


def test_grouping_links_one_to_one_so_two_lesions_never_merge_through_a_big_box():
    """Slice 4 holds two small lesions side by side; slice 5 one box spanning both (IoU 0.5
    with each): union-find made one lesion of all three; one-to-one links the better pair."""
    dets = [
        _d(4, [10, 10, 30, 30], 0.9),
        _d(4, [30, 10, 50, 30], 0.8),
        _d(5, [10, 10, 50, 30], 0.7),
        _d(6, [11, 10, 50, 30], 0.6)
    ]
    lesions = group_detections(dets, GroupingRule(0.45))
    assert sorted(les.slice_range for les in lesions) == [(4, 4), (4, 6)]
    assert lesions[0].key.score == 0.9 and len(lesions[0].members) == 3


def test_grouping_cuts_a_chain_deeper_than_its_size_at_its_weakest_link():
    """A 20 mm structure detected on 100 slices of 2 mm (200 mm) is cut into pieces of at most
    2 x 20 mm + one slice each end (22 slices); a 20 mm lesion over 10 slices stays whole; the
    cut falls where the score dips."""
    table = [_d(k, [10, 10, 30, 30], 0.6) for k in range(100)]
    pieces = group_detections(table, slice_mm=2.0, pixel_mm=(1.0, 1.0))
    assert sum(len(p.members) for p in pieces) == 100 and len(pieces) >= 5
    assert all((p.slice_range[1] - p.slice_range[0] + 1) * 2.0 <= 2 * 20 + 2 * 2 for p in pieces)
    assert len(group_detections(table)) == 1  # no spacing given: no bound
    assert len(group_detections(table, rule=GroupingRule(depth_ratio=None), slice_mm=2.0)) == 1
    lesion = [_d(k, [10, 10, 30, 30], 0.9 - 0.05 * abs(k - 5)) for k in range(10)]
    assert len(group_detections(lesion, slice_mm=2.0)) == 1
    # a lesion (slices 0-9, scores peaking at 5) running into a structure (10-39, score 0.3)
    chain = lesion + [_d(k, [10, 10, 30, 30], 0.3) for k in range(10, 40)]
    first = max(group_detections(chain, slice_mm=2.0), key=lambda les: les.score)
    assert first.slice_range == (0, 9)
    with pytest.raises(ValueError, match='depth_ratio must be > 0'):
        GroupingRule(depth_ratio=0)
