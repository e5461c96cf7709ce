#!/usr/bin/env python
"""How per-slice detections are grouped into 3D lesions, measured with the 3D lesion FROC on
whole synthetic CTs whose every lesion is known in 3D.

    python benchmarks/grouping3d.py CONFIG CHECKPOINT DATA_ROOT [--score-thr 0.5 ...] [--device cpu]
    python benchmarks/grouping3d.py --simulate DATA_ROOT [--seed 0]

DATA_ROOT: a synthetic DeepLesion written with lesion maps
(``data_converters/make_synthetic_deeplesion.py --lesion-maps``: ``lesions_3d/<series>.nii.gz``).
Each series is read as a CT (geometry from ``DATA_ROOT/DL_info.csv``), run through the model once
per slice (``LesionDetector.predict_slices``), and its detections at or above each score
threshold are grouped by each rule below;
the lesions are scored with ``acsdet.evaluation.froc3d`` against the lesion maps (IoBB >= 0.3, the
published setting, and the stricter IoU >= 0.3, which a wrong grouping fails), and counted:
**split** (a GT lesion covered, IoBB >= 0.5, by two or more detected lesions), **merged** (a
detected lesion covering, IoGT >= 0.3, two or more GT lesions), **deep** (a detected lesion
deeper than 2 x its in-plane size + 2 slices).

``--simulate`` replaces the model by a simulated detector, so that grouping alone is measured:
on every slice each lesion of the map is detected (its box on that slice, edges jittered by
0.5 px, score 0.6-0.95 growing with its area) or missed (15 % of the slices, never its largest),
a structure (a fixed 12 x 6 px box below the body: the edge of the scanner table, a vessel) is
detected on every slice (score 0.3-0.5), and false positives fall at random (0.3 a slice,
score 0.05-0.5).

Rules: ``acsdet 0.4`` (union-find of adjacent-slice links at IoU >= 0.5, no gap, no bound, the
rule this benchmark's baseline keeps here), then :class:`acsdet.apis.GroupingRule` with its parts
added one at a time.
"""
import argparse
import os
import os.path as osp
import time

import numpy as np


def union_find_0_4(dets, iou_thr=0.5):
    """acsdet 0.4's rule: connected components of IoU >= ``iou_thr`` links between detections on
    adjacent slices (kept here as the baseline)."""
    from acsdet.apis import Lesion, box_iou
    parent = list(range(len(dets)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_slice = {}
    for i, d in enumerate(dets):
        by_slice.setdefault(d.slice_index, []).append(i)
    for k, idx in by_slice.items():
        nxt = by_slice.get(k + 1)
        if nxt:
            iou = box_iou([dets[i].box for i in idx], [dets[j].box for j in nxt])
            for a, b in zip(*np.nonzero(iou >= iou_thr)):
                ra, rb = find(idx[a]), find(nxt[b])
                if ra != rb:
                    parent[rb] = ra
    groups = {}
    for i, d in enumerate(dets):
        groups.setdefault(find(i), Lesion()).members.append(d)
    return sorted(groups.values(), key=lambda les: -les.score)


def _slice_detections(preds, score_thr):
    from acsdet.apis import SliceDetection
    out = []
    for k, boxes, scores, _ in preds:
        for box, score in zip(boxes, scores):
            if score >= score_thr:
                out.append(SliceDetection(int(k), np.asarray(box, float), float(score)))
    return out


def simulated_predictions(labels: np.ndarray, rng, miss=0.15, fp_rate=0.3):
    """Per-slice predictions ``[(slice, boxes, scores, None)]`` of a simulated detector on the
    label map ``labels`` ``(Z, Y, X)`` (the module doc)."""
    z_n, h, w = labels.shape
    areas = {i: (labels == i).sum((1, 2)) for i in np.unique(labels) if i}
    out = []
    for k in range(z_n):
        boxes, scores = [], []
        for i, area in areas.items():
            if area[k] == 0 or (k != int(area.argmax()) and rng.random() < miss):
                continue
            ys, xs = np.nonzero(labels[k] == i)
            box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)
            boxes.append(box + rng.normal(0, 0.5, 4))
            scores.append(0.6 + 0.35 * area[k] / area.max() - rng.uniform(0, 0.05))
        boxes.append(np.array([w / 2 - 6, h - 14, w / 2 + 6, h - 8]) + rng.normal(0, 0.5, 4))
        scores.append(rng.uniform(0.3, 0.5))  # a structure seen on every slice
        for _ in range(rng.poisson(fp_rate)):
            x, y = rng.uniform(0, w - 20), rng.uniform(0, h - 20)
            boxes.append(np.array([x, y, x + rng.uniform(5, 20), y + rng.uniform(5, 20)]))
            scores.append(rng.uniform(0.05, 0.5))
        out.append((k, np.array(boxes), np.array(scores), None))
    return out


def _boxes(lesions):
    """Detected lesions as inclusive voxel boxes with scores ``(n, 7)`` (lesions.json's rule)."""
    from acsdet.evaluation.lesion_boxes import inclusive_box
    rows = []
    for les in lesions:
        x1, y1, z1, x2, y2, z2 = les.box_3d()
        rows.append([*inclusive_box((x1, x2), (y1, y2), (z1, z2)), les.score])
    return np.array(rows, float).reshape(-1, 7)


def _counts(dets, gts, px, slice_mm):
    from acsdet.evaluation.froc3d import overlap
    split = merged = deep = 0
    for g in gts:
        split += int((overlap(dets[:, :6], g, 'iobb') >= 0.5).sum() >= 2)
    for d in dets:
        merged += int(len(gts) and (overlap(d[:6], gts, 'iogt') >= 0.3).sum() >= 2)
        size = max(d[3] - d[0] + 1, d[4] - d[1] + 1) * px
        deep += int((d[5] - d[2] + 1) * slice_mm > 2 * size + 2 * slice_mm)
    return split, merged, deep


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('paths', nargs='+', metavar='CONFIG CHECKPOINT DATA_ROOT')
    p.add_argument('--simulate', action='store_true')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--score-thr', type=float, nargs='+', default=[0.5])
    p.add_argument('--device', default='cpu')
    args = p.parse_args(argv)
    if len(args.paths) != (1 if args.simulate else 3):
        p.error('give CONFIG CHECKPOINT DATA_ROOT, or --simulate DATA_ROOT')
    args.data_root = args.paths[-1]
    from acsdet.apis import GroupingRule, LesionDetector, group_detections
    from acsdet.evaluation.froc3d import compute_froc_3d
    from acsdet.evaluation.lesion_boxes import CaseGeometry, label_map_boxes
    from acsdet.io import read_ct
    from acsdet.testing.synthetic.write import LESION_MAPS

    rules = {
        'acsdet 0.4 (union-find)': None,
        'one-to-one': GroupingRule(max_gap=0, depth_ratio=None, contain_thr=None),
        '+ ends by containment': GroupingRule(max_gap=0, depth_ratio=None),
        '+ one-slice gaps': GroupingRule(depth_ratio=None),
        '+ depth <= 2 x size (default)': GroupingRule(),
    }
    rng = np.random.default_rng(args.seed)
    det = None if args.simulate else LesionDetector(
        *args.paths[:2], args.device, score_thr=min(args.score_thr))
    maps = sorted(f for f in os.listdir(osp.join(args.data_root, LESION_MAPS)))
    runs = [(thr, name) for thr in args.score_thr for name in rules]
    per_run = {run: [] for run in runs}
    counts = {run: np.zeros(3, int) for run in runs}
    gts_all, t0, slices = [], time.perf_counter(), 0
    for f in maps:
        series = f[:-len('.nii.gz')]
        vol = read_ct(
            osp.join(args.data_root, 'Images_png', series),
            dl_info=osp.join(args.data_root, 'DL_info.csv'))
        label_map = osp.join(args.data_root, LESION_MAPS, f)
        gts = label_map_boxes(label_map, CaseGeometry.from_volume(vol))
        gts_all.append(gts)
        if det is None:
            import SimpleITK as sitk
            labels = sitk.GetArrayFromImage(sitk.ReadImage(label_map))
            preds = simulated_predictions(labels, rng)
        else:
            preds, _ = det.predict_slices(vol, list(range(len(vol.hu))))
        slices += len(vol.hu)
        slice_mm = float(np.median(np.diff(vol.z_positions)))
        for thr, name in runs:
            dets = _slice_detections(preds, thr)
            rule = rules[name]
            lesions = (
                union_find_0_4(dets) if rule is None else group_detections(
                    dets, rule=rule, slice_mm=slice_mm, pixel_mm=vol.pixel_spacing_xy))
            boxes = _boxes(lesions)
            per_run[thr, name].append(boxes)
            counts[thr, name] += _counts(boxes, gts, vol.spacing[2], slice_mm)
    n_gt = sum(len(g) for g in gts_all)
    what = 'simulated detector' if det is None else osp.basename(args.paths[1])
    print(f'{len(maps)} synthetic CTs ({slices} slices, {n_gt} lesions), {what}, '
          f'{time.perf_counter() - t0:.0f} s')
    print('| score >= | grouping rule | lesions | Avg 3D FROC, IoBB >= 0.3 | Avg, IoU >= 0.3 | '
          'split | merged | deep |')
    print('|---|---|---|---|---|---|---|---|')
    for thr, name in runs:
        dets = per_run[thr, name]
        a = compute_froc_3d(dets, gts_all).average
        b = compute_froc_3d(dets, gts_all, metric='iou').average
        n = sum(len(d) for d in dets)
        s, m, d = counts[thr, name]
        print(f'| {thr:g} | {name} | {n} | {100 * a:.2f} | {100 * b:.2f} | {s} | {m} | {d} |')


if __name__ == '__main__':
    main()
