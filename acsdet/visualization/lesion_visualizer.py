"""``LesionVisualizer``: MMDetection's ``DetLocalVisualizer`` for CT key slices.

One palette for every picture acsdet draws: predictions in :data:`PRED_COLOR` (box, mask at
30 %, score), ground truth in :data:`GT_COLOR` (box), RECIST diameters in :data:`RECIST_COLOR`
(the ground truth's in testing, the measured ones of a finding in inference), on the slice in a
HU window (soft tissue by default). Boxes are continuous ``(x1, y1, x2, y2)`` (MMDetection's);
their last pixel row and column are drawn.

The pictures are drawn with OpenCV on the pixel grid, not with MMEngine's matplotlib canvas:
that canvas draws on the main process only, and every rank writes its own test pictures.
:meth:`LesionVisualizer.add_datasample` puts the same picture on the canvas and the
visualisation backends, so the class also serves as a config's ``visualizer``.
"""
from typing import Optional, Sequence

import cv2
import numpy as np
from mmengine.dist import master_only

from mmdet.registry import VISUALIZERS
from mmdet.visualization import DetLocalVisualizer

from ..deeplesion.boxes import continuous_to_inclusive
from ..deeplesion.png import decode_slice
from ..utils.hu import SOFT_TISSUE_WINDOW, window_to_uint8

#: RGB colours (OpenCV drawing converts them).
PRED_COLOR = (255, 0, 0)
GT_COLOR = (0, 200, 0)
RECIST_COLOR = (255, 255, 0)
_MASK_ALPHA = 0.3


def _bgr(rgb):
    return tuple(int(c) for c in rgb[::-1])


def _pt(xy) -> tuple:
    return int(round(float(xy[0]))), int(round(float(xy[1])))


@VISUALIZERS.register_module()
class LesionVisualizer(DetLocalVisualizer):
    """A ``DetLocalVisualizer`` that draws CT key slices (HU) with lesions in acsdet's palette.

    Args:
        window: the HU window of the slice (min, max).
        Other arguments: ``DetLocalVisualizer``'s (``name``, ``vis_backends``, ``save_dir``).
    """

    def __init__(self,
                 name: str = 'lesion_visualizer',
                 window: Sequence[float] = SOFT_TISSUE_WINDOW,
                 **kwargs):
        super().__init__(name=name, **kwargs)
        self.window = tuple(window)

    def slice_image(self, hu: np.ndarray) -> np.ndarray:
        """``(H, W)`` HU -> ``(H, W, 3)`` BGR in the window."""
        return cv2.cvtColor(window_to_uint8(hu, self.window), cv2.COLOR_GRAY2BGR)

    @staticmethod
    def _box(img, box, rgb, label: Optional[str] = None, scale: float = 0.35) -> None:
        x1, y1, x2, y2 = np.round(continuous_to_inclusive(np.reshape(box, (1, 4)))[0]).astype(int)
        cv2.rectangle(img, (x1, y1), (x2, y2), _bgr(rgb), 1)
        if label:
            cv2.putText(img, label, (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        _bgr(rgb), 1, cv2.LINE_AA)

    @staticmethod
    def _masks(img, masks, rgb) -> np.ndarray:
        if masks is None or not len(masks):
            return img
        layer = img.copy()
        for m in masks:
            layer[np.asarray(m).astype(bool)] = _bgr(rgb)
        return cv2.addWeighted(layer, _MASK_ALPHA, img, 1 - _MASK_ALPHA, 0)

    @staticmethod
    def _recist(img, axes) -> None:
        for axis in axes:
            if axis is not None and len(axis):
                a, b = np.asarray(axis, float).reshape(2, 2)
                cv2.line(img, _pt(a), _pt(b), _bgr(RECIST_COLOR), 1)

    def key_slice(self,
                  hu: np.ndarray,
                  pred_boxes: np.ndarray,
                  pred_scores: np.ndarray,
                  pred_masks: Optional[np.ndarray] = None,
                  gt_recists: Sequence = (),
                  gt_boxes: Sequence = (),
                  score_thr: float = 0.3) -> np.ndarray:
        """BGR picture of a tested key slice: the predictions scoring ``>= score_thr`` and the
        ground truth (boxes; RECIST as 8 numbers ``x1 y1 x2 y2`` of the long then the short
        diameter, or None)."""
        img = self.slice_image(hu)
        keep = np.asarray(pred_scores) >= score_thr
        if pred_masks is not None and len(pred_masks):
            img = self._masks(img, np.asarray(pred_masks)[keep], PRED_COLOR)
        for box in np.reshape(gt_boxes, (-1, 4)):
            self._box(img, box, GT_COLOR)
        for rec in gt_recists:
            if rec is not None:
                p = np.asarray(rec, float).reshape(2, 4)
                self._recist(img, [p[0], p[1]])
        for box, s in zip(np.reshape(pred_boxes, (-1, 4))[keep], np.asarray(pred_scores)[keep]):
            self._box(img, box, PRED_COLOR, f'{s:.2f}')
        return img

    def finding(self, hu: np.ndarray, lesion, mask: Optional[np.ndarray] = None) -> np.ndarray:
        """BGR picture of one inference finding (:class:`~acsdet.inference.LesionFinding`)
        on its key slice: its box and ``id: score``, its mask and its RECIST diameters."""
        img = self.slice_image(hu)
        if mask is not None and mask.any():
            img = self._masks(img, [mask], PRED_COLOR)
        self._recist(img, [lesion.recist_long_axis_px, lesion.recist_short_axis_px])
        self._box(img, lesion.key_box_px, PRED_COLOR, f'{lesion.id}: {lesion.score:.2f}', 0.4)
        return img

    @master_only
    def add_datasample(self,
                       name: str,
                       image: np.ndarray,
                       data_sample=None,
                       draw_gt: bool = True,
                       draw_pred: bool = True,
                       show: bool = False,
                       wait_time: float = 0,
                       out_file: Optional[str] = None,
                       pred_score_thr: float = 0.3,
                       step: int = 0) -> None:
        """MMDetection's entry point: ``image`` is the key slice in HU ``(H, W)`` (or None:
        re-read from ``data_sample.img_path``, a DeepLesion PNG; an 8-bit copy of a 16-bit
        slice would have lost its HU)."""
        meta = data_sample.metainfo if data_sample is not None else {}
        if image is None or image.ndim != 2:
            image = decode_slice(meta['img_path'])
        pred = getattr(data_sample, 'pred_instances', None) if draw_pred else None
        gt = [a for a in meta.get('instances', [])
              if not a.get('ignore_flag', 0)] if draw_gt else []
        empty = np.zeros((0, 4))
        bgr = self.key_slice(
            image,
            pred.bboxes.cpu().numpy() if pred is not None else empty,
            pred.scores.cpu().numpy() if pred is not None else np.zeros(0),
            pred.masks.cpu().numpy() if pred is not None and 'masks' in pred else None,
            [a.get('recist') for a in gt], [a['bbox'] for a in gt], pred_score_thr)
        rgb = bgr[..., ::-1]
        self.set_image(rgb)
        if show:
            self.show(rgb, win_name=name, wait_time=wait_time)
        if out_file is not None:
            cv2.imwrite(out_file, bgr)
        else:
            self.add_image(name, rgb, step)
