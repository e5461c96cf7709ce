#!/usr/bin/env python
"""Write DeepLesion PNG series (or any CT acsdet reads) as NIfTI volumes.

    python data_converters/deeplesion_to_nifti.py SERIES_DIR [SERIES_DIR ...] --out-dir DIR
        [--dl-info DL_info.csv | --spacing MM --slice-thickness MM]

Each series folder (``Images_png/<pppppp_ss_ee>/``) becomes ``DIR/<pppppp_ss_ee>.nii.gz``: int16 HU,
axial slices, LPS geometry with the pixel spacing and slice interval of ``DL_info.csv``.
Files are written atomically.
"""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('series', nargs='+')
    p.add_argument('--out-dir', required=True)
    p.add_argument('--dl-info')
    p.add_argument('--spacing', type=float)
    p.add_argument('--slice-thickness', type=float)
    args = p.parse_args(argv)
    import SimpleITK as sitk

    from acsdet.io import CTReadError, read_ct, volume_to_image
    os.makedirs(args.out_dir, exist_ok=True)
    written = []
    for s in args.series:
        try:
            vol = read_ct(s, spacing=args.spacing, slice_thickness=args.slice_thickness,
                          dl_info=args.dl_info)
        except CTReadError as e:
            p.exit(2, f'error: {e}\n')
        out = osp.join(args.out_dir, f'{vol.name}.nii.gz')
        tmp = osp.join(args.out_dir, f'.{vol.name}.{os.getpid()}.tmp.nii.gz')
        try:
            sitk.WriteImage(volume_to_image(vol), tmp, True)
            os.replace(tmp, out)
        finally:
            if osp.exists(tmp):
                os.remove(tmp)
        print(f'{s} -> {out} ({vol.hu.shape[0]} slices)')
        written.append(out)
    return written


if __name__ == '__main__':
    main()
