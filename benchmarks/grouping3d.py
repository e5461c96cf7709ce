#!/usr/bin/env python
"""How per-slice detections are grouped into 3D lesions, measured with the 3D lesion FROC on
whole synthetic CTs whose every lesion is known in 3D.

    python benchmarks/grouping3d.py CONFIG CHECKPOINT DATA_ROOT [--score-thr 0.5] [--device cpu]

DATA_ROOT: a synthetic DeepLesion written with lesion maps
(``data_converters/make_synthetic_deeplesion.py --lesion-maps``: ``lesions_3d/<series>.nii.gz``).
Each series is read as a CT (geometry from ``DATA_ROOT/DL_info.csv``), run through the model once
per slice (``LesionDetector.predict_slices``), and its detections are grouped by each rule below;
the lesions are scored with ``acsdet.evaluation.froc3d`` against the lesion maps (IoBB >= 0.3, the
published setting, and the stricter IoU >= 0.3, which a wrong grouping fails), and counted:
**split** (a GT lesion covered, IoBB >= 0.5, by two or more detected lesions), **merged** (a
detected lesion covering, IoGT >= 0.3, two or more GT lesions), **deep** (a detected lesion
deeper than 2 x its in-plane size + 2 slices).

Rules: ``acsdet 0.4`` (union-find of adjacent-slice links at IoU >= 0.5, no gap, no bound, the
rule this benchmark's baseline keeps here), then :class:`acsdet.apis.GroupingRule` variants.
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


def _boxes(lesions):
    """Detected lesions as inclusive voxel boxes with scores ``(n, 7)`` (lesions.json's rule)."""
    rows = []
    for les in lesions:
        x1, y1, z1, x2, y2, z2 = les.box_3d()
        rows.append([x1, y1, z1, x2 - 1, y2 - 1, z2, les.score])
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
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('data_root')
    p.add_argument('--score-thr', type=float, default=0.5)
    p.add_argument('--device', default='cpu')
    args = p.parse_args(argv)
    from acsdet.apis import GroupingRule, LesionDetector, group_detections
    from acsdet.evaluation.froc3d import compute_froc_3d
    from acsdet.evaluation.lesion_boxes import CaseGeometry, label_map_boxes
    from acsdet.io import read_ct
    from acsdet.testing.synthetic.write import LESION_MAPS

    rules = {
        'acsdet 0.4 (union-find)': None,
        'one-to-one': GroupingRule(max_gap=0, depth_ratio=None),
        'one-to-one, gap 1': GroupingRule(max_gap=1, depth_ratio=None),
        'one-to-one, gap 1, depth <= 2 x size (default)': GroupingRule(),
    }
    det = LesionDetector(args.config, args.checkpoint, args.device, score_thr=args.score_thr)
    maps = sorted(f for f in os.listdir(osp.join(args.data_root, LESION_MAPS)))
    per_rule = {name: ([], []) for name in rules}
    counts = {name: np.zeros(3, int) for name in rules}
    gts_all, t0, slices = [], time.perf_counter(), 0
    for f in maps:
        series = f[:-len('.nii.gz')]
        vol = read_ct(
            osp.join(args.data_root, 'Images_png', series),
            dl_info=osp.join(args.data_root, 'DL_info.csv'))
        geo = CaseGeometry.from_volume(vol)
        gts = label_map_boxes(osp.join(args.data_root, LESION_MAPS, f), geo)
        gts_all.append(gts)
        preds, _ = det.predict_slices(vol, list(range(len(vol.hu))))
        slices += len(vol.hu)
        dets = _slice_detections(preds, args.score_thr)
        slice_mm = float(np.median(np.diff(vol.z_positions)))
        for name, rule in rules.items():
            lesions = (
                union_find_0_4(dets) if rule is None else group_detections(
                    dets, rule=rule, slice_mm=slice_mm, pixel_mm=vol.pixel_spacing_xy))
            boxes = _boxes(lesions)
            per_rule[name][0].append(boxes)
            counts[name] += _counts(boxes, gts, vol.spacing[2], slice_mm)
    n_gt = sum(len(g) for g in gts_all)
    print(f'{len(maps)} synthetic CTs ({slices} slices, {n_gt} lesions), score >= '
          f'{args.score_thr}, {time.perf_counter() - t0:.0f} s')
    print('| grouping rule | lesions | Avg 3D FROC, IoBB >= 0.3 | Avg, IoU >= 0.3 | split | '
          'merged | deep |')
    print('|---|---|---|---|---|---|---|')
    for name in rules:
        dets = per_rule[name][0]
        a = compute_froc_3d(dets, gts_all).average
        b = compute_froc_3d(dets, gts_all, metric='iou').average
        n = sum(len(d) for d in dets)
        s, m, d = counts[name]
        print(f'| {name} | {n} | {100 * a:.2f} | {100 * b:.2f} | {s} | {m} | {d} |')


if __name__ == '__main__':
    main()
