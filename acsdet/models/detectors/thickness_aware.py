"""``ThicknessAwareMaskRCNN``: Mask R-CNN that hands each sample's slice thickness to its backbone.

AlignShift's shift is weighted by the slice thickness of every sample, so the backbone needs it
next to the images. MMDetection's detectors call ``backbone(batch_inputs)`` only; this subclass
reads the thickness from the data samples' meta (``thickness_key``, DeepLesion's
``slice_interval``: the original slice interval of the series, or the volume's slice spacing in
patient-CT inference) in ``loss``, ``predict`` and ``_forward`` and passes it as
``backbone(batch_inputs, thickness=...)``. The pipeline's ``PackDetInputs`` must keep that key in
its ``meta_keys`` (the AlignShift configs do, in training and testing).
"""
import contextlib
import math
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from mmdet.models.detectors import MaskRCNN
from mmdet.registry import MODELS


def sample_thickness(data_samples: Sequence, key: str = 'slice_interval') -> List[float]:
    """The ``key`` meta value of every data sample as positive floats (mm); errors name the image
    whose value is missing or not a positive number."""
    out = []
    for s in data_samples:
        value = s.metainfo.get(key)
        try:
            t = float(value)
        except (TypeError, ValueError):
            t = float('nan')
        if not math.isfinite(t) or t <= 0:
            raise ValueError(f'{s.metainfo.get("img_path", "a sample")}: no usable slice thickness '
                             f'({key}={value!r}); AlignShift needs it for every sample (add '
                             f"{key!r} to PackDetInputs' meta_keys)")
        out.append(t)
    return out


@MODELS.register_module()
class ThicknessAwareMaskRCNN(MaskRCNN):
    """:class:`~mmdet.models.detectors.MaskRCNN` whose backbone receives ``thickness`` ``(N,)``.

    Args:
        thickness_key: the meta key holding each sample's slice thickness in mm.
        Other arguments: as ``MaskRCNN``.
    """

    def __init__(self, *args, thickness_key: str = 'slice_interval', **kwargs):
        super().__init__(*args, **kwargs)
        self.thickness_key = thickness_key
        self._thickness: Optional[Tensor] = None

    def _take_thickness(self, batch_inputs: Tensor, batch_data_samples) -> None:
        self._thickness = None
        if batch_data_samples is not None:
            self._thickness = torch.tensor(
                sample_thickness(batch_data_samples, self.thickness_key),
                dtype=torch.float32,
                device=batch_inputs.device)

    def extract_feat(self, batch_inputs: Tensor) -> Tuple[Tensor]:
        x = self.backbone(batch_inputs, thickness=self._thickness)
        if self.with_neck:
            x = self.neck(x)
        return x

    @contextlib.contextmanager
    def _thickness_of(self, batch_inputs: Tensor, batch_data_samples):
        """The samples' thickness for the ``extract_feat`` calls of one ``loss`` / ``predict`` /
        ``_forward`` (MMDetection's detectors call ``extract_feat(batch_inputs)`` only), and none
        after it: a later direct ``extract_feat`` call never sees another batch's thickness."""
        self._take_thickness(batch_inputs, batch_data_samples)
        try:
            yield
        finally:
            self._thickness = None

    def loss(self, batch_inputs: Tensor, batch_data_samples):
        with self._thickness_of(batch_inputs, batch_data_samples):
            return super().loss(batch_inputs, batch_data_samples)

    def predict(self, batch_inputs: Tensor, batch_data_samples, rescale: bool = True):
        with self._thickness_of(batch_inputs, batch_data_samples):
            return super().predict(batch_inputs, batch_data_samples, rescale=rescale)

    def _forward(self, batch_inputs: Tensor, batch_data_samples=None):
        with self._thickness_of(batch_inputs, batch_data_samples):
            return super()._forward(batch_inputs, batch_data_samples)
