"""restore_lesions: per-slice detections -> 3D lesions with their geometry, no model needed."""
import numpy as np
import pytest

from acsdet.inference import GroupingRule, restore_lesions
from acsdet.io import CTVolume


def _volume():
    hu = np.zeros((4, 40, 40), np.float32)
    return CTVolume(
        hu=hu,
        spacing=(2.0, 0.5, 0.5),
        z_positions=np.arange(4) * 2.0,
        origin=np.zeros(3),
        direction=np.diag([1.0, 1.0, -1.0]),  # towards L, P and the feet
        to_stored=((0, 1, 2), (False, False, False), (40, 40, 4)),
        reference=None,
        source='test volume',
        name='t')


def _square(x0, y0, x1, y1):
    m = np.zeros((1, 40, 40), bool)
    m[0, y0:y1, x0:x1] = True
    return m


def test_adjacent_detections_become_one_lesion_with_its_geometry():
    preds = [
        (1, np.array([[10., 10., 20., 20.]]), np.array([0.9]), _square(10, 10, 20, 20)),
        (2, np.array([[11., 10., 21., 20.]]), np.array([0.8]), _square(11, 10, 21, 20)),
        (3, np.array([[30., 30., 36., 36.]]), np.array([0.6]), _square(30, 30, 36, 36)),
    ]
    res = restore_lesions(_volume(), preds, (0, 4), score_thr=0.5, rule=GroupingRule(0.5))
    assert [les.id for les in res.lesions] == [1, 2] and res.score_thr == 0.5
    a, b = res.lesions
    assert (a.slices, a.key_slice, a.score, a.key_box_px) == ([1, 2], 1, 0.9, [10., 10., 20., 20.])
    assert b.slices == [3, 3] and b.num_slices == 1
    assert a.center_voxel == [14.5, 14.5, 1.0] and a.center_stored_index == [14.5, 14.5, 1.0]
    assert a.center_lps_mm == [7.25, 7.25, -2.0]  # slice 1 is 2 mm towards the feet
    assert a.volume_ml == round(200 * 0.25 * 2.0 / 1000, 3)
    assert 9 * 2**0.5 * 0.5 < a.recist_long_mm < 9 * 2**0.5 * 0.5 + 0.8
    assert (res.label_map[1, 10:20, 10:20] == 1).all() and (res.label_map[2, 10:20, 11:21]
                                                            == 1).all()
    assert (res.label_map[3, 30:36, 30:36] == 2).all() and int((res.label_map > 0).sum()) == 236
    assert [(d['lesion'], d['slice']) for d in res.detections] == [(1, 1), (1, 2), (2, 3)]


def test_masks_inside_their_boxes_give_what_full_masks_give():
    """What the detector keeps of a mask (its box's pixels) restores the same lesions."""
    from acsdet.inference.restore import masks_in_boxes
    full = [
        (1, np.array([[10., 10., 20., 20.], [29.5, 30.2, 36., 40.]]), np.array([0.9, 0.7]),
         np.concatenate([_square(10, 10, 20, 20), _square(31, 32, 35, 38)])),
        (2, np.array([[11., 10., 21., 20.]]), np.array([0.8]), _square(11, 12, 21, 18)),
    ]
    boxed = [(k, b, s, masks_in_boxes(b, m)) for k, b, s, m in full]
    assert [c.shape for c in boxed[0][3]] == [(10, 10), (10, 7)]  # 29.5 .. 36 -> 29 .. 36
    a, b = (restore_lesions(_volume(), p, (0, 4), 0.5, GroupingRule(0.5)) for p in (full, boxed))
    np.testing.assert_array_equal(a.label_map, b.label_map)
    assert int((a.label_map > 0).sum()) == 100 + 24 + 60
    assert [les.volume_ml for les in a.lesions] == [les.volume_ml for les in b.lesions]
    bad = [(1, full[1][1], full[1][2], [np.ones((3, 3), bool)])]
    with pytest.raises(ValueError, match=r'slice 1, detection 0: a mask of \(3, 3\) px'):
        restore_lesions(_volume(), bad, (0, 4), 0.5)
