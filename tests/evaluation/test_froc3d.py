"""The 3D lesion-level FROC against an independent transliteration of the published code."""
import numpy as np
import pytest

from acsdet.evaluation.froc3d import AVERAGE_FPS_3D, FPS_3D, compute_froc_3d, overlap
from tests import official_froc3d as official


def _random_case(rng, n_vol=12, p3d=False):
    """Volumes with 0-4 GT boxes and 0-25 detections, many near a GT box."""
    dets, gts = [], []
    for _ in range(n_vol):
        g = []
        for _ in range(rng.integers(0, 5)):
            x, y, z = rng.integers(0, 200, 3)
            w, h, d = rng.integers(3, 40, 3)
            g.append([x, y, z, x + w, y + h, z if p3d else z + d])
        g = np.array(g, float).reshape(-1, 6)
        d = []
        for _ in range(rng.integers(0, 26)):
            if len(g) and rng.random() < 0.6:
                b = g[rng.integers(len(g))].copy()
                b[:3] += rng.integers(-6, 7, 3)
                b[3:] += rng.integers(-6, 7, 3)
                if p3d:
                    b[2], b[5] = b[2] - rng.integers(0, 4), b[5] + rng.integers(-2, 4)
                b[3:] = np.maximum(b[3:], b[:3])
            else:
                x, y, z = rng.integers(0, 200, 3)
                b = np.array([
                    x, y, z, x + rng.integers(3, 40), y + rng.integers(3, 40),
                    z + rng.integers(0, 20)
                ], float)
            d.append(np.append(b, rng.random()))
        dets.append(np.array(d, float).reshape(-1, 7))
        gts.append(g)
    if not sum(len(g) for g in gts):
        gts[0] = np.array([[10, 10, 10, 20, 20, 10 if p3d else 15]], float)
    return dets, gts


@pytest.mark.parametrize('mode', ['3d', 'p3d'])
@pytest.mark.parametrize('metric', ['iou', 'iobb', 'iogt', 'iobbgt'])
def test_equals_the_published_code_in_every_overlap_mode(mode, metric):
    rng = np.random.default_rng(abs(hash((mode, metric))) % 2**32)
    for trial in range(6):
        dets, gts = _random_case(rng, p3d=mode == 'p3d')
        thr = [0.3, 0.5, 0.1][trial % 3]
        res = compute_froc_3d(dets, gts, metric=metric, thr=thr, mode=mode)
        want, want_avg = official.evaluate(dets, gts, mode.upper(), metric.upper(), thr)
        np.testing.assert_allclose(res.sensitivities, want, rtol=0, atol=1e-12)
        assert res.average == pytest.approx(want_avg, abs=1e-12)
        assert res.fps == FPS_3D and res.average_fps == AVERAGE_FPS_3D
        assert res.num_images == len(gts) and res.num_lesions == sum(len(g) for g in gts)


def test_overlap_values_and_the_plus_one_convention():
    det = np.array([0, 0, 0, 9, 9, 9], float)  # 10 x 10 x 10 voxels
    gt = np.array([5, 0, 0, 14, 9, 4], float)  # 10 x 10 x 5, meets the detection in 5 x 10 x 5
    assert overlap(det, gt, 'iobb') == pytest.approx(250 / 1000)
    assert overlap(det, gt, 'iogt') == pytest.approx(250 / 500)
    assert overlap(det, gt, 'iou') == pytest.approx(250 / (1000 + 500 - 250))
    assert overlap(det, gt, 'iobbgt') == pytest.approx(0.5)
    on_slice = np.array([5, 0, 7, 14, 9, 7], float)
    assert overlap(det, on_slice, 'iobb', 'p3d') == pytest.approx(50 / 100)
    assert overlap(det, on_slice + [0, 0, 5, 0, 0, 5], 'iobb', 'p3d') == 0  # slice 12: outside


def test_perfect_detections_score_one_and_a_shift_in_z_counts():
    gts = [np.array([[10, 10, 4, 29, 29, 7]], float), np.array([[50, 60, 0, 59, 69, 1]], float)]
    perfect = [np.hstack([g, [[0.9]]]) for g in gts]
    assert compute_froc_3d(perfect, gts).average == 1.0
    # one slice lower: IoBB 3/4 and 1/2 still hit at 0.3; at IoU 0.5, 3/5 hits and 1/3 misses
    shifted = [np.hstack([g + [0, 0, 1, 0, 0, 1], [[0.9]]]) for g in gts]
    assert compute_froc_3d(shifted, gts).average == 1.0
    res = compute_froc_3d(shifted, gts, metric='iou', thr=0.5)
    assert res.sensitivities[0] == 0.5 and res.curve_fps[-1] == 0.5


def test_bad_boxes_name_the_volume_and_row():
    gts = [np.array([[10, 10, 4, 29, 29, 7]], float)]
    with pytest.raises(ValueError, match=r"detections of volume 'ct1', row 1: not a finite"):
        compute_froc_3d([np.array([[1, 1, 1, 5, 5, 5, .9], [1, 1, np.nan, 5, 5, 5, .8]])],
                        gts,
                        names=['ct1'])
    with pytest.raises(ValueError, match=r"ground truth of volume 0, row 0: inverted box"):
        compute_froc_3d([np.zeros((0, 7))], [np.array([[10, 10, 8, 29, 29, 7]], float)])
    with pytest.raises(ValueError, match=r'P3D ground truth lies on one slice'):
        compute_froc_3d([np.zeros((0, 7))], gts, mode='p3d')
    with pytest.raises(ValueError, match='overlap must be one of iou, iobb, iogt, iobbgt'):
        compute_froc_3d([np.zeros((0, 7))], gts, metric='dice')
    with pytest.raises(ValueError, match=r'threshold must be in \(0, 1\]'):
        compute_froc_3d([np.zeros((0, 7))], gts, thr=0)
    with pytest.raises(ValueError, match='2 detection lists for 1 GT lists'):
        compute_froc_3d([np.zeros((0, 7))] * 2, gts)
