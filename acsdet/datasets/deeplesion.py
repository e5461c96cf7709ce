"""``DeepLesionDataset``: the converter's COCO files as an MMDetection dataset."""
import os.path as osp
from typing import List, Optional, Sequence

from mmengine.fileio import get_local_path

from mmdet.datasets import BaseDetDataset
from mmdet.registry import DATASETS

from ..deeplesion.coco import complete_interrupted_conversion, read_coco_annotations


@DATASETS.register_module()
class DeepLesionDataset(BaseDetDataset):
    """Key slices of one DeepLesion split (``deeplesion_{split}.json`` of
    ``data_converters/deeplesion_to_coco.py``), one class: lesion.

    Each data info holds ``img_path`` (the key slice PNG under ``data_prefix['img']``),
    ``key_slice``, ``slice_interval``, ``spacing``, ``dicom_window``, ``height``/``width`` and
    ``instances`` (box ``[x1, y1, x2, y2]`` 0-based and continuous as everywhere in MMDetection,
    i.e. DeepLesion's inclusive pixel box plus 1 on x2 and y2, see
    :mod:`acsdet.deeplesion.boxes`; label 0, weak mask RLE, lesion type, long
    diameter in mm, noisy flag), which the slice loader, ``LoadAnnotations`` and ``FROCMetric`` use.

    Args:
        drop_noisy: remove ``Possibly_noisy`` lesions (the official protocol; default True).
            False keeps them as ordinary lesions.
        keep_empty: keep key slices left without lesions (after dropping noisy lesions and
            selecting types). Default False in every mode: the official evaluation only scores
            key slices with a lesion.
        lesion_types: keep only lesions of these coarse types (1 bone ... 8 pelvis, -1 unlabelled);
            None keeps all.
    """
    METAINFO = dict(classes=('lesion', ), palette=[(220, 20, 60)])

    def __init__(self,
                 *args,
                 drop_noisy: bool = True,
                 keep_empty: bool = False,
                 lesion_types: Optional[Sequence[int]] = None,
                 data_prefix: dict = dict(img='Images_png/'),
                 **kwargs):
        self.drop_noisy, self.keep_empty = drop_noisy, keep_empty
        self.lesion_types = None if lesion_types is None else {int(t) for t in lesion_types}
        super().__init__(*args, data_prefix=data_prefix, **kwargs)

    def load_data_list(self) -> List[dict]:
        with get_local_path(self.ann_file, backend_args=self.backend_args) as path:
            complete_interrupted_conversion(path)  # a conversion killed in its commit: finish it
            images = read_coco_annotations(path)
        img_prefix = self.data_prefix.get('img', '')
        data_list = []
        for img in images:
            instances = [
                dict(
                    bbox=a['bbox'],
                    bbox_label=0,
                    ignore_flag=0,
                    mask=a['mask'],
                    lesion_type=a['lesion_type'],
                    long_diameter_mm=a['long_diameter_mm'],
                    noisy=a['noisy'],
                    recist=a['recist']) for a in img['lesions']
                if not (self.drop_noisy and a['noisy']) and (
                    self.lesion_types is None or a['lesion_type'] in self.lesion_types)
            ]
            data_list.append(
                dict(
                    img_id=img['id'],
                    img_path=osp.join(img_prefix, img['file_name']),
                    height=img['height'],
                    width=img['width'],
                    key_slice=img['key_slice'],
                    slice_interval=img['slice_interval'],
                    spacing=img['spacing'],
                    dicom_window=img['dicom_window'],
                    instances=instances))
        return data_list

    def filter_data(self) -> List[dict]:
        kept = self.data_list if self.keep_empty else [d for d in self.data_list if d['instances']]
        if not kept:
            raise ValueError(
                f'{self.ann_file}: no key slice to use ({len(self.data_list)} in the file, none '
                'with a lesion left after the noisy/type selection); an empty split is reported '
                'in deeplesion_conversion_report.json by the converter')
        return kept
