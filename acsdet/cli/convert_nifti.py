"""Write DeepLesion PNG series (or any CT acsdet reads) as NIfTI volumes.

    acsdet convert nifti SERIES_DIR [SERIES_DIR ...] --out-dir DIR
        [--dl-info DL_info.csv | --spacing MM --slice-interval MM]
    acsdet convert nifti --dl-info DL_info.csv --images-dir Images_png --split test \
        [--lesion-type 5] [--limit 1] --out-dir DIR

Each series folder (``Images_png/<pppppp_ss_ee>/``) becomes ``DIR/<pppppp_ss_ee>.nii.gz``: int16 HU,
axial slices with the pixel spacing and slice interval of ``DL_info.csv``, in DeepLesion's slice
order: the file's slice axis points towards the feet (a viewer shows the head at the top), slice
``i`` of the series at S = -i x interval mm. With ``--sub-volumes`` each run of consecutive PNG
slices of a series becomes ``DIR/<pppppp_ss_ee>_<top>-<bottom>.nii.gz`` (``%03d`` PNG numbers,
the naming of DeepLesion's manual 3D test set, whose sub-volumes ``acsdet froc3d
--gt-deeplesion-3d`` scores). With ``--split`` the series are those of the split's
(non-noisy) lesions in ``DL_info.csv``, in file order, optionally of one coarse lesion type. Files
are written atomically; a series that cannot be read is reported and the others go on (exit
status 1). Nothing is written over an input or over a file acsdet did not write (the folder's
ledger ``.acsdet-files.json`` says which it wrote); two inputs of one name get two names
(``<name>-<8 hex>.nii.gz``, :mod:`acsdet.utils.run_outputs`).
"""
import argparse
import os.path as osp
import sys
from typing import Optional

import numpy as np


def pick_series(dl_info: str, images_dir: str, split: str, lesion_type=None, limit=None):
    """Series folders of a split's non-noisy lesions in DL_info.csv, in file order."""
    from acsdet.deeplesion.info import SPLITS, read_dl_info
    records, _ = read_dl_info(dl_info)
    out = []
    for r in records:
        if SPLITS.get(r.split) != split or r.noisy:
            continue
        if lesion_type is not None and r.lesion_type != lesion_type:
            continue
        folder = osp.join(images_dir, r.series_dir)
        if folder not in out:
            out.append(folder)
        if limit and len(out) >= limit:
            break
    return out


def sub_volumes(vol, folder: str):
    """A DeepLesion PNG series volume split at the gaps of its PNG slice numbers: one volume per
    run of consecutive slices, named ``<series>_<top>-<bottom>`` (``%03d``), its geometry the
    run's (slice ``i`` of the run is PNG ``top + i``)."""
    import dataclasses

    from acsdet.io import CTReadError
    from acsdet.io.png_series import png_slice_numbers
    if not osp.isdir(folder) or not vol.source.startswith('DeepLesion PNG series'):
        raise CTReadError(f'{folder}: --sub-volumes splits DeepLesion PNG series folders only')
    numbers = png_slice_numbers(folder)
    breaks = [0] + [i for i in range(1, len(numbers)) if numbers[i] != numbers[i - 1] + 1]
    out = []
    for a, b in zip(breaks, breaks[1:] + [len(numbers)]):
        z = vol.z_positions[a:b]
        perm, flip, size = vol.to_stored
        out.append(
            dataclasses.replace(
                vol,
                hu=vol.hu[a:b],
                z_positions=z,
                spacing=(float(np.median(np.diff(z))) if b - a > 1 else vol.spacing[0], ) +
                tuple(vol.spacing[1:]),
                origin=vol.origin + vol.direction[:, 2] * (z[0] - vol.z_positions[0]),
                to_stored=(perm, flip, (size[0], size[1], b - a)),
                name=f'{vol.name}_{numbers[a]:03d}-{numbers[b - 1]:03d}',
                warnings=[]))
    return out


def build_parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split('\n\n')[0])
    p.add_argument('series', nargs='*')
    p.add_argument('--out-dir', required=True)
    p.add_argument('--images-dir', help='Images_png folder, to pick series with --split')
    p.add_argument('--split', choices=['train', 'val', 'test'])
    p.add_argument('--lesion-type', type=int, help='with --split: 1 bone ... 8 pelvis')
    p.add_argument('--limit', type=int, help='with --split: at most this many series')
    p.add_argument('--dl-info')
    p.add_argument('--spacing', type=float)
    p.add_argument('--slice-interval', '--slice-thickness', type=float)
    p.add_argument(
        '--sub-volumes',
        action='store_true',
        help='one file per run of consecutive PNG slices: <series>_<top>-<bottom>.nii.gz')
    return p


def main(argv=None, prog: Optional[str] = None):
    """Convert; returns ``(files written, inputs that failed)``."""
    p = build_parser(prog)
    args = p.parse_args(argv)
    if args.split:
        if not (args.dl_info and args.images_dir):
            p.error('--split needs --dl-info and --images-dir')
        args.series += pick_series(args.dl_info, args.images_dir, args.split, args.lesion_type,
                                   args.limit)
    if not args.series:
        p.error('no series: name series folders or pick them with --split')
    import SimpleITK as sitk

    from acsdet.io import CTReadError, read_ct, volume_to_image
    from acsdet.utils import check_writable_dir
    from acsdet.utils.run_outputs import OutputRefused, RunOutputs
    outputs = RunOutputs('deeplesion_to_nifti', args.series + [args.dl_info])
    try:
        check_writable_dir(args.out_dir)
    except OSError as e:
        p.exit(2, f'error: {e}\n')
    written, failed = [], []
    for s in args.series:
        try:
            vol = read_ct(
                s, spacing=args.spacing, slice_interval=args.slice_interval, dl_info=args.dl_info)
        except (CTReadError, OSError) as e:
            print(f'error: {e}', file=sys.stderr)
            failed.append(s)
            continue
        if args.sub_volumes:
            try:
                parts = sub_volumes(vol, s)
            except CTReadError as e:
                print(f'error: {e}', file=sys.stderr)
                failed.append(s)
                continue
        else:
            parts = [vol]
        for part in parts:
            key = f'{osp.realpath(s)}#{part.name}'
            try:
                out = outputs.claim(osp.join(args.out_dir, f'{part.name}.nii.gz'), key)
            except OutputRefused as e:
                print(f'error: {s}: {e}', file=sys.stderr)
                failed.append(s)
                continue
            image = volume_to_image(part)
            outputs.save(out, lambda tmp: sitk.WriteImage(image, tmp, True), '.nii.gz', key)
            print(f'{s} -> {out} ({part.hu.shape[0]} slices)')
            written.append(out)
    if failed:
        print(f'{len(failed)} series failed: {", ".join(failed)}', file=sys.stderr)
    return written, failed


def cli(argv=None, prog: Optional[str] = None) -> int:
    return 1 if main(argv, prog)[1] else 0
