"""The 3D lesion-level FROC as the DeepLesion manual 3D test set's evaluation code writes it (Ke
Yan, ``general_detection_evaluation.py``: ``FROC``, ``IOX``, ``sens_at_FP``; IEEE TMI 2020),
transliterated for the tests: a global ranking walked one detection at a time (``argsort`` of
the scores, reversed), overlaps with the +1 convention in 3D or P3D (GT on one slice), a
detection that overlaps only GT already hit counted as neither, and ``interp1d`` on the curve
without its origin (0 below its first point, its last sensitivity beyond its end).
Independent of acsdet's code on purpose: the tests compare acsdet's numbers with these.
"""
import numpy as np
from scipy.interpolate import interp1d


def iox(box, gts, dim='3D', metric='IOU'):
    """Overlap of one detection box with each GT box of its volume."""
    if dim == '3D':
        extent = [(0, 3), (1, 4), (2, 5)]
        z_in = 1.0
    else:  # 'P3D': the GT sits on one slice; the detection must span it
        assert np.all(gts[:, 2] == gts[:, 5])
        extent = [(0, 3), (1, 4)]
        z_in = (box[2] <= gts[:, 2]) & (gts[:, 2] <= box[5])
    inter, box_size, gt_size = z_in, 1.0, 1.0
    for lo, hi in extent:
        inter = inter * np.maximum(
            np.minimum(gts[:, hi], box[hi]) - np.maximum(gts[:, lo], box[lo]) + 1., 0.)
        box_size = box_size * (box[hi] - box[lo] + 1.)
        gt_size = gt_size * (gts[:, hi] - gts[:, lo] + 1.)
    if metric == 'IOU':
        return inter / (box_size + gt_size - inter)
    if metric == 'IOBB':
        return inter / box_size
    if metric == 'IOGT':
        return inter / gt_size
    return np.maximum(inter / box_size, inter / gt_size)  # 'IOBBGT'


def froc(boxes_all, gts_all, dim='3D', metric='IOU', th=.3):
    """``(sensitivity, FPs per volume)`` after each detection of the ranking."""
    n_img = len(boxes_all)
    img_idxs = np.hstack([[i] * len(boxes_all[i]) for i in range(n_img)]).astype(int)
    boxes_cat = np.vstack(boxes_all)
    order = np.argsort(boxes_cat[:, -1])[::-1]
    boxes_cat, img_idxs = boxes_cat[order, :-1], img_idxs[order]
    hits = [np.zeros(len(g), dtype=bool) for g in gts_all]
    n_hits = n_miss = 0
    tps, fps = [], []
    for i in range(len(boxes_cat)):
        ov = iox(boxes_cat[i], gts_all[img_idxs[i]], dim, metric)
        if len(ov) == 0 or np.any(np.isnan(ov)) or ov.max() < th:
            n_miss += 1
        else:
            for j in range(len(ov)):
                if ov[j] >= th and not hits[img_idxs[i]][j]:
                    hits[img_idxs[i]][j] = True
                    n_hits += 1
        tps.append(n_hits)
        fps.append(n_miss)
    n_gt = len(np.vstack(gts_all))
    return np.array(tps, float) / n_gt, np.array(fps, float) / n_img


def sens_at_fp(sens, fp_per_img, fp_values):
    left = [a for a in fp_values if a < fp_per_img[0]]
    inside = [a for a in fp_values if fp_per_img[0] <= a <= fp_per_img[-1]]
    right = [a for a in fp_values if a > fp_per_img[-1]]
    f = interp1d(fp_per_img, sens)
    return np.hstack([np.zeros(len(left)), f(np.array(inside)), np.ones(len(right)) * sens[-1]])


def evaluate(boxes_all, gts_all, dim='3D', metric='IOBB', th=.3):
    """Sensitivity at 2^-3 .. 2^10 FPs per volume and the mean of the first seven."""
    sens, fps = froc(boxes_all, gts_all, dim, metric, th)
    res = sens_at_fp(sens, fps, [2.**p for p in range(-3, 11)])
    return res, res[:7].mean()
