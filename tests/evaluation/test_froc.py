"""The official FROC protocol on hand-worked cases, and against the one-at-a-time reference."""
import numpy as np
import pytest

from acsdet.evaluation import compute_froc, compute_froc_by_group, froc_curve, size_bucket
from acsdet.evaluation.froc import sensitivity_at

from ..official_froc import froc as official_froc

A = [0, 0, 9, 9]  # a 10 x 10 px lesion with the +1 convention


def d(box, score):
    return list(box) + [score]


def sens(dets, gts, fps=(0.5, 1, 2, 4, 8, 16)):
    return compute_froc([np.array(x, float).reshape(-1, 5) for x in dets],
                        [np.array(g, float).reshape(-1, 4) for g in gts],
                        fps=fps)


def test_image_without_gt_counts_its_detections_as_false_positives():
    r = sens([[d(A, .9)], [d(A, .8)]], [[A], []])
    np.testing.assert_allclose(r.curve_fps, [0, 0, 0.5])
    np.testing.assert_allclose(r.curve_sensitivities, [0, 1, 1])
    assert r.num_images == 2 and r.num_lesions == 1


def test_two_detections_on_one_lesion_second_is_neither_hit_nor_fp():
    r = sens([[d(A, .9), d([1, 1, 9, 9], .8), d([50, 50, 60, 60], .7)]], [[A]])
    np.testing.assert_allclose(r.curve_fps, [0, 0, 0, 1])
    np.testing.assert_allclose(r.curve_sensitivities, [0, 1, 1, 1])


def test_one_detection_covering_two_lesions_hits_both():
    b = [1, 1, 10, 10]
    r = sens([[d([0, 0, 10, 10], .9)]], [[A, b]])
    np.testing.assert_allclose(r.curve_sensitivities, [0, 1])
    assert r.sensitivities[0] == 1.0


def test_curve_ending_before_16_fps_keeps_its_last_sensitivity():
    # 1 image, 1 lesion found after 2 FPs, then nothing: the curve ends at 2 FPs
    r = sens([[d([50, 50, 60, 60], .9), d([70, 70, 80, 80], .8), d(A, .7)]], [[A]])
    np.testing.assert_allclose(r.curve_fps, [0, 1, 2, 2])
    # at 0.5 and 1 FP: nothing found yet; at exactly 2 FPs the curve ties (2 FPs before and
    # after the hit): its last point counts (MULAN's interp1d); beyond the end: the last value
    np.testing.assert_allclose(r.sensitivities, [0, 0, 1, 1, 1, 1])
    assert r.average == pytest.approx(0.5)


def test_empty_detection_lists():
    r = sens([[], []], [[A], [A]])
    np.testing.assert_array_equal(r.sensitivities, np.zeros(6))
    assert r.average == 0


def test_iou_exactly_at_threshold_uses_plus_one_convention():
    # +1 convention: det 10 x 5 px inside the 10 x 10 GT -> IoU 50/100 = 0.5 exactly: a hit.
    # (Without +1 it would be 36/81 = 0.44, a miss.)
    assert sens([[d([0, 0, 9, 4], .9)]], [[A]]).curve_sensitivities[-1] == 1
    # one row fewer: 40/100 = 0.4 -> a false positive
    r = sens([[d([0, 0, 9, 3], .9)]], [[A]])
    assert r.curve_sensitivities[-1] == 0 and r.curve_fps[-1] == 1


def test_global_ranking_across_images():
    # image 0's two FPs outrank image 1's hit: at 0.5 FP/image (1 FP over 2 images) the hit has
    # not happened yet; at 1 FP/image it has
    fp1, fp2 = d([50, 50, 60, 60], .9), d([70, 70, 80, 80], .8)
    r = sens([[fp1, fp2], [d(A, .5)]], [[A], [A]], fps=(0.5, 1))
    np.testing.assert_allclose(r.curve_fps, [0, .5, 1, 1])
    np.testing.assert_allclose(r.sensitivities, [0, .5])
    # ranked first, the hit counts at 0.5 FP/image already
    r = sens([[fp1, fp2], [d(A, .95)]], [[A], [A]], fps=(0.5, 1))
    np.testing.assert_allclose(r.sensitivities, [.5, .5])


def test_linear_interpolation_between_points():
    fps = np.array([0, 1, 2.])
    s = np.array([0, .4, .8])
    np.testing.assert_allclose(sensitivity_at(fps, s, [0.5, 1.5, 2, 3]), [.2, .6, .8, .8])
    # a tie at 1 FP: the last point of the tie
    np.testing.assert_allclose(
        sensitivity_at(np.array([0, 1, 1, 2.]), np.array([0, .2, .5, .5]), [1, 0.5]), [.5, .1])


def _random_case(rng, n_img=60):
    dets, gts = [], []
    for _ in range(n_img):
        g = []
        for _ in range(rng.integers(0, 4)):
            x, y = rng.uniform(0, 100, 2)
            w, h = rng.uniform(5, 30, 2)
            g.append([x, y, x + w, y + h])
        g = np.array(g).reshape(-1, 4)
        ds = []
        for _ in range(rng.integers(0, 12)):
            if len(g) and rng.random() < 0.5:  # jitter a GT box
                base = g[rng.integers(len(g))] + rng.normal(0, 3, 4)
            else:
                x, y = rng.uniform(0, 100, 2)
                base = [x, y, x + rng.uniform(5, 30), y + rng.uniform(5, 30)]
            ds.append(list(base) + [round(rng.random(), 2)])  # rounded: many score ties
        dets.append(np.array(ds).reshape(-1, 5))
        gts.append(g)
    return dets, gts


@pytest.mark.parametrize('seed', range(5))
def test_vectorised_curve_equals_reference_loop(seed):
    dets, gts = _random_case(np.random.default_rng(seed))
    fast = froc_curve(dets, gts)
    sens, fps = official_froc(dets, gts)  # MULAN's loop, one detection at a time
    np.testing.assert_allclose(fast[0][1:], fps)  # acsdet's curve starts at the origin
    np.testing.assert_allclose(fast[1][1:], sens)


def test_matches_mulan_scipy_interp1d_in_range():
    """Inside the curve, the value at each FP rate is scipy interp1d's (MULAN's code)."""
    from scipy import interpolate
    dets, gts = _random_case(np.random.default_rng(7), n_img=200)
    r = compute_froc(dets, gts, fps=(0.5, 1, 2, 4))
    x, y = r.curve_fps[1:], r.curve_sensitivities[1:]  # MULAN's curve has no origin point
    f = interpolate.interp1d(x, y)
    for fp, s in zip(r.fps, r.sensitivities):
        if x[0] <= fp <= x[-1]:
            assert s == pytest.approx(float(f(fp)))
        elif fp > x[-1]:
            assert s == y[-1]


def test_by_group_restricts_gt_and_keeps_all_detections():
    b = [50, 50, 59, 59]
    dets = [[d(A, .9), d(b, .8)]]
    res = compute_froc_by_group([np.array(x) for x in dets], [np.array([A, b])],
                                [np.array(['liver', 'lung'])],
                                fps=(0.5, 1))
    # for 'lung', the hit on the liver lesion is a false positive ranked above the lung hit
    np.testing.assert_allclose(res['lung'].curve_fps, [0, 1, 1])
    np.testing.assert_allclose(res['lung'].sensitivities, [0, 1])
    np.testing.assert_allclose(res['liver'].sensitivities, [1, 1])
    assert res['lung'].num_lesions == 1


def test_size_buckets():
    assert [size_bucket(x)
            for x in (3, 10, 29.9, 30, 60)] == ['<10mm', '10-30mm', '10-30mm', '>=30mm', '>=30mm']


def test_bad_input_is_named():
    with pytest.raises(ValueError, match='one entry per evaluated image'):
        compute_froc([np.zeros((0, 5))], [])
    with pytest.raises(ValueError, match=r'detections\[0\]'):
        compute_froc([np.zeros((2, 3))], [np.array([A])])
    with pytest.raises(ValueError, match='no GT'):
        compute_froc([np.zeros((0, 5))], [np.zeros((0, 4))])
