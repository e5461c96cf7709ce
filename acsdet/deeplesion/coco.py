"""acsdet's COCO files (``data_converters/deeplesion_to_coco.py``): one reader for the dataset and
``tools/froc_eval.py``, the fingerprint that ties ids to key slices, and the completion of a
conversion that was killed while replacing its files.

Each key slice comes back as a dict with its image fields, its DeepLesion image key
(``<series>/<slice>.png``, which survives re-conversions; COCO ids do not) and its lesions with
boxes in MMDetection's continuous form (:mod:`acsdet.deeplesion.boxes`). Files written by acsdet
0.1 (boxes one pixel too small) are refused with the command that rewrites them. Reading writes
nothing: callers complete an interrupted conversion first (:func:`complete_interrupted_conversion`).
"""
import hashlib
import json
import os.path as osp
from typing import List, Optional

import numpy as np

from ..utils import finish_write_set
from .boxes import COCO_BOX_FORMAT, coco_to_continuous
from .naming import image_key


def _bbox(ann: dict, path: str) -> list:
    box = ann.get('bbox')
    try:
        vals = np.asarray(box, dtype=np.float64)
    except (TypeError, ValueError):
        vals = np.zeros(0)
    if vals.shape != (4, ) or not np.isfinite(vals).all() or vals[2] <= 0 or vals[3] <= 0:
        raise ValueError(f'{path}: annotation {ann.get("id")} (image {ann.get("image_id")}): '
                         f'bbox must be 4 finite numbers [x, y, w, h] with w, h > 0, got {box!r}')
    return coco_to_continuous(vals)


def coco_fingerprint(coco: dict) -> str:
    """What ties COCO image ids to key slices in one file: a hash of its ``(id, file name)``
    pairs. Detections keyed by id must carry it (``tools/froc_eval.py``); a re-conversion that
    shifts ids changes it."""
    pairs = sorted((str(i.get('id')), image_key(i.get('file_name', ''))) for i in coco['images'])
    return hashlib.sha1(json.dumps(pairs).encode()).hexdigest()[:16]


def complete_interrupted_conversion(path: str) -> None:
    """Complete a conversion killed while replacing its files in ``path``'s folder, so that the
    next read sees the whole new set (never the old one first)."""
    folder = osp.dirname(osp.abspath(path))
    try:
        finish_write_set(folder)
    except OSError as e:
        raise OSError(f'{folder}: an interrupted conversion left its files half-renamed and '
                      f'they cannot be completed ({e}); re-run the converter') from e


def read_coco_annotations(path: str, coco: Optional[dict] = None) -> List[dict]:
    """Key slices of a COCO file of ``data_converters/deeplesion_to_coco.py``, in file order.

    Returns one dict per image: ``id``, ``key``, ``file_name``, ``height``, ``width``,
    ``key_slice``, ``slice_interval``, ``spacing``, ``dicom_window`` and ``lesions`` (each
    ``bbox`` continuous ``[x1, y1, x2, y2]``, ``mask`` RLE, ``lesion_type``, ``long_diameter_mm``,
    ``noisy``, ``recist``). Noisy lesions are included (flagged); callers choose.
    ``coco``: the file's content when the caller has parsed it already. Call
    :func:`complete_interrupted_conversion` first. Raises ``ValueError`` naming the file (and the
    annotation) for anything malformed.
    """
    if coco is None:
        try:
            with open(path) as f:
                coco = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f'{path}: not a JSON file ({e})') from None
    if not isinstance(coco, dict) or not isinstance(coco.get('images'), list) or not isinstance(
            coco.get('annotations'), list):
        raise ValueError(f'{path}: not a COCO file (needs "images" and "annotations" lists)')
    info = coco.get('info') or {}
    if 'acsdet' in str(info.get('description', '')) and info.get('bbox_format') != COCO_BOX_FORMAT:
        raise ValueError(
            f'{path}: written by acsdet 0.1, whose boxes are one pixel too small '
            '(w = x2 - x1); re-run data_converters/deeplesion_to_coco.py to rewrite it')
    images, seen_keys = {}, {}
    for img in coco['images']:
        if not isinstance(img, dict) or 'id' not in img or 'file_name' not in img:
            raise ValueError(f'{path}: image entry without "id" or "file_name": {img!r:.200}')
        if img['id'] in images:
            raise ValueError(f'{path}: image id {img["id"]} appears twice')
        key = image_key(img['file_name'])
        if key in seen_keys:
            raise ValueError(f'{path}: key slice {key} appears twice (ids {seen_keys[key]} and '
                             f'{img["id"]})')
        seen_keys[key] = img['id']
        images[img['id']] = dict(
            id=img['id'],
            key=key,
            file_name=img['file_name'],
            height=img.get('height'),
            width=img.get('width'),
            key_slice=img.get('key_slice'),
            slice_interval=img.get('slice_interval'),
            spacing=img.get('spacing'),
            dicom_window=img.get('dicom_window'),
            lesions=[])
    for ann in coco['annotations']:
        img = images.get(ann.get('image_id')) if isinstance(ann, dict) else None
        if img is None:
            which = ann.get('id') if isinstance(ann, dict) else repr(ann)
            raise ValueError(f'{path}: annotation {which} refers to no image of the file')
        img['lesions'].append(
            dict(
                bbox=_bbox(ann, path),
                mask=ann.get('segmentation'),
                lesion_type=ann.get('lesion_type', -1),
                long_diameter_mm=ann.get('long_diameter_mm'),
                noisy=int(ann.get('noisy', 0)),
                recist=ann.get('recist')))
    return list(images.values())
