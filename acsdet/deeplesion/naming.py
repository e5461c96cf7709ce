"""DeepLesion's file naming: series folders, key-slice paths and image keys.

A key slice is ``Images_png/<pppppp_ss_ee>/<kkk>.png``; ``DL_info.csv`` names it
``pppppp_ss_ee_kkk.png`` (the last ``_`` stands for the ``/``). Its **image key**
``<pppppp_ss_ee>/<kkk>.png`` survives re-conversions (COCO ids do not), so every reader and the
FROC tool match images by it.
"""
import os.path as osp


def image_key(path: str) -> str:
    """``<series>/<slice>.png`` of any path (or COCO ``file_name``) of a DeepLesion key slice."""
    parts = str(path).replace('\\', '/').split('/')
    return '/'.join(parts[-2:])


def key_slice_relpath(file_name: str) -> str:
    """``'pppppp_ss_ee/kkk.png'`` of ``DL_info.csv``'s ``'pppppp_ss_ee_kkk.png'``."""
    head, tail = file_name.rsplit('_', 1)
    return f'{head}/{tail}'


def key_slice_path(images_dir: str, file_name: str) -> str:
    """Path of a key slice's PNG under ``Images_png/``."""
    return osp.join(images_dir, key_slice_relpath(file_name))
