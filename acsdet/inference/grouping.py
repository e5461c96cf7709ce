"""From per-slice detections to 3D lesions (pure numpy).

Grouping rule (:class:`GroupingRule`):

1. **Link** detections on adjacent processed slices whose boxes overlap with IoU >= ``iou_thr``
   (0.5), or where the smaller box lies inside the larger (intersection over the smaller >=
   ``contain_thr``, 0.8: the shrinking cross-sections at a lesion's ends), one to one: on each
   pair of slices the best-overlapping pairs link first, and a detection links to at most one
   detection on the slice below and one above. A lesion is a chain; two lesions side by side
   never merge through a larger box next to both.
2. **Bridge** gaps of up to ``max_gap`` slices (1): a chain that ends and one that starts up to
   ``1 + max_gap`` slices further, their end boxes linked by the same test, are one lesion (a
   detection missed on one slice does not split a lesion in two).
3. **Bound** a lesion's depth by its size: a chain spanning more than ``depth_ratio`` (2) times
   its largest in-plane box side, plus one slice each end (partial volume), is cut at its
   weakest link until every piece fits: where box and score change most (the lowest IoU x
   lower / higher score of the two slices joined; the middle on a tie). A structure detected
   slice after slice (the scanner table, a vessel) is no longer one lesion hundreds of
   millimetres long. Needs the slice and pixel spacing; without them (``slice_mm=None``)
   nothing is cut.

Two detections on one slice are never one lesion.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..deeplesion.boxes import continuous_to_inclusive, iou_plus1


@dataclass
class SliceDetection:
    """One detection on one axial slice: continuous box ``[x1, y1, x2, y2]`` px, score, and the
    mask inside the box (``mask_box``: ``(y2 - y1, x2 - x1)`` bool on the rounded box) or None."""
    slice_index: int
    box: np.ndarray
    score: float
    mask_box: Optional[np.ndarray] = None
    mask_origin: Tuple[int, int] = (0, 0)  # (x, y) of mask_box[0, 0]

    def full_mask(self, shape: Tuple[int, int]) -> np.ndarray:
        out = np.zeros(shape, bool)
        if self.mask_box is not None:
            x0, y0 = self.mask_origin
            h, w = self.mask_box.shape
            out[y0:y0 + h, x0:x0 + w] = self.mask_box[:shape[0] - y0, :shape[1] - x0]
        return out


@dataclass
class Lesion:
    """A 3D lesion: its member detections (one or more per slice) and the best one."""
    members: List[SliceDetection] = field(default_factory=list)

    @property
    def key(self) -> SliceDetection:
        return max(self.members, key=lambda d: d.score)

    @property
    def score(self) -> float:
        return self.key.score

    @property
    def slice_range(self) -> Tuple[int, int]:
        s = [d.slice_index for d in self.members]
        return min(s), max(s)

    def box_3d(self) -> np.ndarray:
        """``[x1, y1, z1, x2, y2, z2]``: continuous in x, y; inclusive slice indices in z."""
        b = np.array([d.box for d in self.members])
        z0, z1 = self.slice_range
        return np.array([b[:, 0].min(), b[:, 1].min(), z0, b[:, 2].max(), b[:, 3].max(), z1])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of continuous boxes ``(n, 4)`` and ``(m, 4)``: the +1-pixel IoU of their
    inclusive forms (:func:`~acsdet.deeplesion.boxes.iou_plus1`), 0 for empty boxes."""
    a = continuous_to_inclusive(np.reshape(a, (-1, 4)))
    b = continuous_to_inclusive(np.reshape(b, (-1, 4)))
    return np.nan_to_num(iou_plus1(a[:, None], b[None]))


@dataclass(frozen=True)
class GroupingRule:
    """How per-slice detections become 3D lesions (the module doc): link at IoU >= ``iou_thr``
    or containment >= ``contain_thr`` (``None``: IoU only), one to one, bridge gaps of up to
    ``max_gap`` slices, cut lesions deeper than ``depth_ratio`` x their in-plane size
    (``None``: no bound)."""
    iou_thr: float = 0.5
    max_gap: int = 1
    depth_ratio: Optional[float] = 2.0
    contain_thr: Optional[float] = 0.8

    def __post_init__(self):
        if not 0 < self.iou_thr <= 1:
            raise ValueError(f'grouping iou_thr must be in (0, 1], got {self.iou_thr}')
        if self.max_gap < 0:
            raise ValueError(f'grouping max_gap must be >= 0 slices, got {self.max_gap}')
        if self.depth_ratio is not None and not self.depth_ratio > 0:
            raise ValueError(f'grouping depth_ratio must be > 0 (or None), got {self.depth_ratio}')
        if self.contain_thr is not None and not 0 < self.contain_thr <= 1:
            raise ValueError(f'grouping contain_thr must be in (0, 1] (or None), got '
                             f'{self.contain_thr}')


def _link(dets, a_idx, b_idx, rule, nxt, prv):
    """One-to-one links from detections ``a_idx`` to ``b_idx``, best IoU first."""
    if not a_idx or not b_idx:
        return
    a = np.array([dets[i].box for i in a_idx], float).reshape(-1, 4)
    b = np.array([dets[j].box for j in b_idx], float).reshape(-1, 4)
    iou = box_iou(a, b)
    linked = iou >= rule.iou_thr
    if rule.contain_thr is not None:  # the smaller box inside the larger: a lesion's end
        area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), 1)[:, None]
        area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), 1)[None]
        inter = iou * (area_a + area_b) / (1 + iou)
        with np.errstate(divide='ignore', invalid='ignore'):
            inside = np.nan_to_num(inter / np.minimum(area_a, area_b))
        linked |= inside >= rule.contain_thr
    pairs = np.argwhere(linked)
    for a, b in sorted(pairs.tolist(), key=lambda ab: -iou[ab[0], ab[1]]):
        i, j = a_idx[a], b_idx[b]
        if nxt[i] is None and prv[j] is None:
            nxt[i], prv[j] = j, i


def group_detections(
    detections: Sequence[SliceDetection],
    rule: GroupingRule = GroupingRule(),
    slice_mm: Optional[float] = None,
    pixel_mm: Tuple[float, float] = (1.0, 1.0)) -> List[Lesion]:
    """3D lesions from per-slice detections by ``rule``, by descending score.

    Args:
        detections: the detections of one CT, any order.
        rule: the :class:`GroupingRule`.
        slice_mm: slice spacing, for the depth bound (None: no bound).
        pixel_mm: ``(x, y)`` pixel spacing, for the depth bound.

    Returns:
        The lesions, highest score first.
    """
    if not isinstance(rule, GroupingRule):
        raise TypeError(f'rule must be a GroupingRule, got {rule!r}')
    dets = list(detections)
    nxt: List[Optional[int]] = [None] * len(dets)
    prv: List[Optional[int]] = [None] * len(dets)
    by_slice: Dict[int, List[int]] = {}
    for i, d in enumerate(dets):
        by_slice.setdefault(d.slice_index, []).append(i)
    for k in sorted(by_slice):
        _link(dets, by_slice[k], by_slice.get(k + 1, []), rule, nxt, prv)
    for gap in range(1, rule.max_gap + 1):  # chain ends to chain starts across the gap
        for k in sorted(by_slice):
            ends = [i for i in by_slice[k] if nxt[i] is None]
            starts = [j for j in by_slice.get(k + 1 + gap, []) if prv[j] is None]
            _link(dets, ends, starts, rule, nxt, prv)
    chains = []
    for i in range(len(dets)):
        if prv[i] is None:
            chain = [i]
            while nxt[chain[-1]] is not None:
                chain.append(nxt[chain[-1]])
            chains.append(chain)
    if rule.depth_ratio is not None and slice_mm is not None:
        chains = [p for c in chains for p in _bounded(dets, c, rule, slice_mm, pixel_mm)]
    lesions = [Lesion([dets[i] for i in c]) for c in chains]
    return sorted(lesions, key=lambda les: -les.score)


def _bounded(dets, chain: List[int], rule: GroupingRule, slice_mm: float,
             pixel_mm: Tuple[float, float]) -> List[List[int]]:
    """``chain`` cut at its weakest links until each piece's depth fits its size."""
    members = [dets[i] for i in chain]
    depth = (members[-1].slice_index - members[0].slice_index + 1) * slice_mm
    size = max(
        max((d.box[2] - d.box[0]) * pixel_mm[0], (d.box[3] - d.box[1]) * pixel_mm[1])
        for d in members)
    if len(chain) < 3 or depth <= rule.depth_ratio * size + 2 * slice_mm:
        return [chain]
    mid = (len(chain) - 2) / 2

    def strength(n):  # the link between members n and n + 1: alike in box and score
        a, b = members[n], members[n + 1]
        ratio = min(a.score, b.score) / max(a.score, b.score, 1e-12)
        return float(box_iou([a.box], [b.box])[0, 0]) * ratio, abs(n - mid)

    n = min(range(len(chain) - 1), key=strength)
    return (_bounded(dets, chain[:n + 1], rule, slice_mm, pixel_mm) +
            _bounded(dets, chain[n + 1:], rule, slice_mm, pixel_mm))
