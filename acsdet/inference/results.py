"""The records of inference, immutable. ``LesionFinding``: one detected 3D lesion as acsdet
reports it, the one record the detector fills and every writer reads (``lesions.json``'s
``lesions[]``, ``lesions.csv``, the report and the overlays; field order is the JSON's).
``Provenance``: what made a result. ``DetectionResult``: one CT's findings, per-slice detections
and label map, with its provenance."""
import dataclasses
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from ..io import CTVolume
from ..version import __version__


@dataclass(frozen=True)
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


RESULT_VERSION = '1.0'


@dataclass(frozen=True)
class Provenance:
    """What made a result: the config and checkpoint as given (paths or names), the checkpoint
    file's SHA-256, and the acsdet version. Empty strings where unknown (a result restored from
    detections without a model)."""
    config: str = ''
    checkpoint: str = ''
    checkpoint_sha256: str = ''
    acsdet_version: str = __version__

    def to_json(self) -> dict:
        """``lesions.json``'s provenance keys (``config`` and ``checkpoint`` only when known)."""
        out = {k: v for k, v in (('config', self.config), ('checkpoint', self.checkpoint)) if v}
        if self.checkpoint_sha256:
            out['checkpoint_sha256'] = self.checkpoint_sha256
        out['acsdet_version'] = self.acsdet_version
        return out


@dataclass(frozen=True)
class DetectionResult:
    """Lesions of one CT and how they were found (see ``lesions.json`` in docs/outputs.md).
    Frozen: a step that adds to it makes a new one (``dataclasses.replace``)."""
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
    #: the grouping rule that made the lesions (:class:`~acsdet.inference.GroupingRule`)
    grouping: dict = field(default_factory=dict)
    #: the config, checkpoint and code that made it
    provenance: Provenance = field(default_factory=Provenance)
