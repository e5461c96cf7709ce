"""``FROCMetric``: the official DeepLesion FROC as an MMEngine metric (thin glue over froc.py)."""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from mmdet.registry import METRICS

from ..deeplesion.boxes import continuous_to_inclusive
from ..deeplesion.info import LESION_TYPES as LESION_TYPE_NAMES
from ..utils import json_safe
from ..utils.run_outputs import OutputRefused, RunOutputs
from .froc import (DEFAULT_FPS, FROCResult, compute_froc, compute_froc_by_group, size_bucket,
                   thickness_bucket)

SUBSETS = ('lesion_type', 'size', 'thickness')


def _to_numpy(x):
    return x.detach().cpu().numpy() if hasattr(x, 'detach') else np.asarray(x)


@METRICS.register_module()
class FROCMetric(BaseMetric):
    """Sensitivity at 0.5, 1, 2, 4, 8, 16 FPs per image and their 0.5-4 average.

    Predictions come from ``pred_instances`` (boxes in original image coordinates, as MMDetection's
    test mode rescales them); GT from the sample's ``instances`` (the dataset's annotations, in
    original coordinates, packed as a meta key), lesions with ``ignore_flag`` left out, or else
    from ``gt_instances``. Works in distributed evaluation (results are gathered by BaseMetric).

    Args:
        fps: FP-per-image operating points.
        iou_thr: IoU for a hit (+1-pixel convention).
        subsets: per-subset sensitivities to report: any of 'lesion_type', 'size' (long diameter
            < 10, 10-30, >= 30 mm) and 'thickness' (slice interval <= 2.5 mm or thicker); they
            need ``lesion_type`` / ``long_diameter_mm`` in the instances and ``slice_interval``
            in the sample.
        output_dir: if set, write ``froc.json`` (operating points, subsets, the curve),
            ``froc_table.txt`` and ``froc_curve.png`` there; ``tools/test.py`` sets it to the
            work dir. A file of those names that acsdet did not write is left as it is, with a
            warning (:mod:`acsdet.utils.run_outputs`).
        continuous_boxes: boxes are MMDetection's continuous ``[x1, y1, x2, y2)`` (default); the
            official protocol's inclusive pixel boxes with the +1 IoU are ``x2 - 1, y2 - 1`` of
            them (the IoU is the same; :mod:`acsdet.deeplesion.boxes`). False: boxes are already
            inclusive pixel boxes.
    """
    default_prefix = 'froc'

    def __init__(self,
                 fps: Sequence[float] = DEFAULT_FPS,
                 iou_thr: float = 0.5,
                 subsets: Sequence[str] = SUBSETS,
                 output_dir: Optional[str] = None,
                 continuous_boxes: bool = True,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        unknown = set(subsets) - set(SUBSETS)
        if unknown:
            raise ValueError(f'unknown FROC subsets {sorted(unknown)}; choose from {SUBSETS}')
        self.fps, self.iou_thr, self.subsets = tuple(fps), iou_thr, tuple(subsets)
        self.output_dir = output_dir
        self.continuous_boxes = continuous_boxes
        #: the writer of the output files (a tool sets one with its inputs and claims first)
        self.outputs = RunOutputs(type(self).__name__)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            pred = sample['pred_instances']
            boxes = _to_numpy(pred['bboxes']).reshape(-1, 4)
            scores = _to_numpy(pred['scores']).reshape(-1, 1)
            gt, groups = self._ground_truth(sample)
            if self.continuous_boxes:  # to inclusive pixel boxes, as the protocol counts them
                boxes, gt = continuous_to_inclusive(boxes), continuous_to_inclusive(gt)
            dets = np.hstack([boxes, scores]).astype(np.float64)
            self.results.append(dict(img_id=sample.get('img_id'), dets=dets, gt=gt, groups=groups))

    def _ground_truth(self, sample: dict):
        interval = sample.get('slice_interval')
        if 'instances' in sample:
            kept = [a for a in sample['instances'] if not a.get('ignore_flag', 0)]
            gt = np.array([a['bbox'] for a in kept], dtype=np.float64).reshape(-1, 4)
        else:
            inst = sample['gt_instances']
            kept = [{} for _ in range(len(inst['bboxes']))]
            gt = _to_numpy(inst['bboxes']).astype(np.float64).reshape(-1, 4)
        groups = {}
        if 'lesion_type' in self.subsets:
            groups['lesion_type'] = [
                LESION_TYPE_NAMES.get(int(a.get('lesion_type', -1)), 'unlabelled') for a in kept
            ]
        if 'size' in self.subsets:
            groups['size'] = [
                size_bucket(a['long_diameter_mm']) if a.get('long_diameter_mm') else 'unknown'
                for a in kept
            ]
        if 'thickness' in self.subsets:
            groups['thickness'] = [
                thickness_bucket(interval) if interval else 'unknown' for _ in kept
            ]
        return gt, groups

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        logger = MMLogger.get_current_instance()
        summary = self.summarize(results)
        if summary is None:
            logger.warning('FROCMetric: no GT lesion among the evaluated images; no sensitivity')
            return {}
        metrics, text = summary
        logger.info('\n' + text)
        return metrics

    def summarize(self, results: List[dict]):
        """``(metrics, printable tables)`` of collected results (None without any GT lesion);
        writes the output files when ``output_dir`` is set."""
        dets = [r['dets'] for r in results]
        gts = [r['gt'] for r in results]
        if not sum(len(g) for g in gts):
            return None
        main = compute_froc(dets, gts, self.fps, self.iou_thr)
        metrics = main.as_dict()
        lines = [main.table('FROC (all lesions)')]
        by_subset = {}
        for name in self.subsets:
            labels = [r['groups'][name] for r in results]
            res = compute_froc_by_group(dets, gts, labels, self.fps, self.iou_thr)
            by_subset[name] = res
            for group, r in res.items():
                if group != 'unknown':
                    metrics[f'{name}[{group}]/avg'] = float(r.average)
            lines.append(self._subset_table(name, res))
        text = '\n\n'.join(lines)
        if self.output_dir:
            try:
                self.save(main, by_subset, self.output_dir)
                self.outputs.write(
                    osp.join(self.output_dir, 'froc_table.txt'), lambda f: f.write(text + '\n'))
            except OutputRefused as e:
                MMLogger.get_current_instance().warning(f'FROCMetric: not written: {e}')
        return metrics, text

    def _subset_table(self, name: str, res: Dict[str, FROCResult]) -> str:
        head = ['group', 'lesions'] + [f'{f:g}' for f in self.fps] + ['Avg']
        rows = [[str(g), str(r.num_lesions)] + [f'{100 * s:.2f}' for s in r.sensitivities] +
                [f'{100 * r.average:.2f}'] for g, r in res.items()]
        widths = [max(len(str(c)) for c in col) for col in zip(head, *rows)]
        fmt = lambda cells: ' | '.join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
        return '\n'.join([f'FROC by {name} (%)', fmt(head)] + [fmt(r) for r in rows])

    def save(self, main: FROCResult, by_subset: Dict[str, Dict[str, FROCResult]], out_dir: str):
        """Write ``froc.json`` and ``froc_curve.png`` into ``out_dir``."""
        os.makedirs(out_dir, exist_ok=True)
        payload = dict(
            fps=list(main.fps),
            sensitivities=main.sensitivities.tolist(),
            average=main.average,
            num_images=main.num_images,
            num_lesions=main.num_lesions,
            curve=dict(
                fps_per_image=main.curve_fps.tolist(),
                sensitivity=main.curve_sensitivities.tolist()),
            subsets={
                name: {
                    str(g):
                    dict(
                        sensitivities=r.sensitivities.tolist(),
                        average=r.average,
                        num_lesions=r.num_lesions)
                    for g, r in res.items()
                }
                for name, res in by_subset.items()
            })
        self.outputs.write(
            osp.join(out_dir, 'froc.json'),
            lambda f: json.dump(json_safe(payload), f, indent=1, allow_nan=False))
        plot_froc(main, osp.join(out_dir, 'froc_curve.png'), outputs=self.outputs)


#: The files :class:`FROCMetric` writes into its ``output_dir``.
FROC_FILES = ('froc.json', 'froc_table.txt', 'froc_curve.png')


def plot_froc(result: FROCResult,
              path: str,
              title: str = 'FROC',
              outputs: Optional[RunOutputs] = None) -> None:
    """Save the FROC curve (sensitivity vs FPs per image, log x axis) with its operating points
    (through ``outputs``, :class:`~acsdet.utils.run_outputs.RunOutputs`, when given)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    x, y = result.curve_fps, result.curve_sensitivities
    keep = x > 0
    ax.plot(x[keep], 100 * y[keep], lw=1.5, label='curve')
    ax.plot(result.fps, 100 * result.sensitivities, 'o', label='operating points')
    for f, s in zip(result.fps, result.sensitivities):
        ax.annotate(
            f'{100 * s:.1f}', (f, 100 * s),
            textcoords='offset points',
            xytext=(0, 6),
            ha='center',
            fontsize=7)
    ax.set_xscale('log')
    ax.set_xlim(min(result.fps) / 2, max(result.fps) * 1.5)
    ax.set_ylim(0, 100)
    ax.set_xlabel('false positives per image')
    ax.set_ylabel('sensitivity (%)')
    ax.set_title(f'{title}: avg(0.5-4) = {100 * result.average:.2f}%')
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(loc='lower right')
    fig.tight_layout()
    (outputs or RunOutputs('plot_froc')).write(
        path, lambda f: fig.savefig(f, format='png'), binary=True)
    plt.close(fig)
