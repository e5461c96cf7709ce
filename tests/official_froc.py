"""The official DeepLesion FROC as MULAN's code writes it (Ke Yan, NIH, ``maskrcnn/utils/
detection_eval.py``: ``FROC`` and ``sens_at_FP``), transliterated for the tests: inclusive pixel
boxes, +1-pixel IoU, a global ranking walked one detection at a time,
``scipy.interpolate.interp1d(fp_per_img, sens)`` on the curve (which scipy hands to ``np.interp``:
at a tie of FP counts, the last point of the tie), the last sensitivity beyond its end.
Independent of acsdet's code on purpose: the tests compare acsdet's numbers with these.
(3DCE's variant calls ``interp1d(..., fill_value='extrapolate')``, which scipy does not hand to
``np.interp``: it takes the first point of a tie and extrapolates past the curve's end.)
"""
import numpy as np
from scipy.interpolate import interp1d


def iou(box, gts):
    ixmin = np.maximum(gts[:, 0], box[0])
    iymin = np.maximum(gts[:, 1], box[1])
    ixmax = np.minimum(gts[:, 2], box[2])
    iymax = np.minimum(gts[:, 3], box[3])
    iw = np.maximum(ixmax - ixmin + 1., 0.)
    ih = np.maximum(iymax - iymin + 1., 0.)
    inters = iw * ih
    uni = ((box[2] - box[0] + 1.) * (box[3] - box[1] + 1.) + (gts[:, 2] - gts[:, 0] + 1.) *
           (gts[:, 3] - gts[:, 1] + 1.) - inters)
    return inters / uni


def froc(boxes_all, gts_all, iou_th=0.5):
    """``(sensitivity, FPs per image)`` after each detection of the global ranking."""
    n_img = len(boxes_all)
    img_idxs = np.hstack([[i] * len(boxes_all[i]) for i in range(n_img)]).astype(int)
    boxes_cat = np.vstack([np.reshape(b, (-1, 5)) for b in boxes_all])
    order = np.argsort(-boxes_cat[:, -1], kind='stable')
    boxes_cat, img_idxs = boxes_cat[order, :4], img_idxs[order]
    hits = [np.zeros(len(g), dtype=bool) for g in gts_all]
    n_hits = n_miss = 0
    tps, fps = [], []
    for i in range(len(boxes_cat)):
        gts = np.reshape(gts_all[img_idxs[i]], (-1, 4))
        overlaps = iou(boxes_cat[i], gts) if len(gts) else np.zeros(0)
        if len(overlaps) == 0 or overlaps.max() < iou_th:
            n_miss += 1
        else:
            for j in range(len(overlaps)):
                if overlaps[j] >= iou_th and not hits[img_idxs[i]][j]:
                    hits[img_idxs[i]][j] = True
                    n_hits += 1
        tps.append(n_hits)
        fps.append(n_miss)
    n_gt = sum(len(np.reshape(g, (-1, 4))) for g in gts_all)
    return np.array(tps, float) / n_gt, np.array(fps, float) / n_img


def sens_at_fp(boxes_all, gts_all, avg_fp=(0.5, 1, 2, 4, 8, 16), iou_th=0.5):
    """Sensitivity at each of ``avg_fp`` FPs per image (MULAN's ``sens_at_FP``)."""
    sens, fp_per_img = froc(boxes_all, gts_all, iou_th)
    avg_fp_in = [a for a in avg_fp if a <= fp_per_img[-1]]
    avg_fp_out = [a for a in avg_fp if a > fp_per_img[-1]]
    f = interp1d(fp_per_img, sens)
    return np.hstack([f(np.array(avg_fp_in)), np.ones((len(avg_fp_out), )) * sens[-1]])
