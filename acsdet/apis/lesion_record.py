"""The records of inference. ``LesionFinding``: one detected 3D lesion as acsdet reports it, the
one record the detector fills and every writer reads (``lesions.json``'s ``lesions[]``,
``lesions.csv``, the report and the overlays; field order is the JSON's). ``DetectionResult``:
one CT's findings, per-slice detections and label map."""
import dataclasses
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from ..io import CTVolume

#: ``lesions.csv``'s columns.
CSV_FIELDS = ('id', 'score', 'key_slice', 'key_slice_stored', 'first_slice', 'last_slice',
              'center_x_mm', 'center_y_mm', 'center_z_mm', 'recist_long_mm', 'recist_short_mm',
              'volume_ml')


@dataclass
class LesionFinding:
    """A lesion: slices are the volume's (DeepLesion's order, head to feet), ``*_stored`` the
    input file's own indices, ``*_lps_mm`` physical LPS millimetres (see ``lesions.json`` in
    docs/inference.md)."""
    id: int
    score: float
    key_slice: int
    key_slice_stored: int
    slices: List[int]  # [first, last]
    num_slices: int
    key_box_px: List[float]  # continuous x1, y1, x2, y2 on the key slice
    box_voxel: dict  # x, y: continuous [first, last]; z: inclusive slices
    box_stored_index: dict  # min, max voxel centres
    box_lps_mm: dict  # min, max
    center_voxel: List[float]
    center_stored_index: List[float]
    center_lps_mm: List[float]
    recist_long_mm: Optional[float]
    recist_short_mm: Optional[float]
    recist_long_axis_px: Optional[list]
    recist_short_axis_px: Optional[list]
    volume_ml: float

    def to_json(self) -> dict:
        """The ``lesions.json`` entry (plain values, the fields in order)."""
        return dataclasses.asdict(self)

    def csv_row(self) -> list:
        """The ``lesions.csv`` row (:data:`CSV_FIELDS`)."""
        c = self.center_lps_mm
        return [
            self.id, self.score, self.key_slice, self.key_slice_stored, self.slices[0],
            self.slices[1], c[0], c[1], c[2], self.recist_long_mm, self.recist_short_mm,
            self.volume_ml
        ]


RESULT_VERSION = '1.0'


@dataclass
class DetectionResult:
    """Lesions of one CT and how they were found (see ``lesions.json`` in docs/inference.md)."""
    volume: CTVolume
    lesions: List[LesionFinding]
    detections: List[dict]
    label_map: np.ndarray  # (Z, Y, X) uint16 in the volume's (LPI-ordered) grid, 0 = background
    slices: Tuple[int, int]
    score_thr: float
    seconds: dict = field(default_factory=dict)
    #: how the detections were made: ``mode`` 'per-slice' or 'volumetric' (then the grid step,
    #: the key slices run and each stored slice's key position, mm below the first slice)
    inference: dict = field(default_factory=dict)
    #: the grouping rule that made the lesions (:class:`~acsdet.apis.lesions.GroupingRule`)
    grouping: dict = field(default_factory=dict)
