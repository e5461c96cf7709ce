"""A digest of what acsdet writes, to compare two versions of the code on the same inputs.

    python tools/dev/output_digest.py WORK [--out DIGEST.json]

WORK holds the inputs; they are made on the first run (a phantom CT as a DICOM series, as NIfTI
and as a DeepLesion PNG series; a random-weight checkpoint of the demo config; FROC inputs) and
reused after, so that two versions of the code read the very same files. Each run then writes,
through the command-line tools, ``lesions.json`` / ``.csv``, the label map, the DICOM SEG and SR
(per slice and volumetric), and the 2D and 3D FROC results, and prints (or writes) one JSON
digest of them. What changes on every run is normalised: timings, the acsdet version, and every
UID acsdet made (numbered in the order they appear); dates and times of the derived objects are
left out. Two digests are equal when the outputs are.
"""
import argparse
import csv
import glob
import hashlib
import json
import os
import os.path as osp
import re
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs', 'demo', 'deeplesion_acs_7slice_demo.py')
SPACING = (2.0, 0.8, 0.8)


def make_inputs(work: str) -> None:
    import numpy as np
    import SimpleITK as sitk
    import torch
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    import acsdet.all_modules  # noqa: F401  (registers acsdet's modules)
    from acsdet.engine.architecture import ARCH_KEY, model_architecture
    from acsdet.testing.ct_files import (head_to_feet_phantom, lps_image, write_dicom_series,
                                         write_png_series)
    from mmdet.registry import MODELS
    os.makedirs(work, exist_ok=True)
    init_default_scope('mmdet')
    torch.manual_seed(0)
    cfg = Config.fromfile(CONFIG)
    model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save({
        'state_dict': model.state_dict(),
        'meta': {
            ARCH_KEY: model_architecture(cfg.model)
        }
    }, osp.join(work, 'random.pth'))
    hu, lesions = head_to_feet_phantom(24, 96)
    write_dicom_series(hu, SPACING, osp.join(work, 'ct_dicom'))
    sitk.WriteImage(lps_image(hu, SPACING), osp.join(work, 'ct.nii.gz'))
    write_png_series(hu, osp.join(work, 'ct_png'))
    rng = np.random.default_rng(0)
    gt, dets = {}, {}
    for s in range(6):
        for k in range(3):
            key = f'000{s:03d}_01_01/{k:03d}.png'
            x, y = rng.uniform(50, 300, 2)
            gt[key] = [[x, y, x + 30, y + 20]]
            dets[key] = [[x + dx, y + dx, x + 30 + dx, y + 20,
                          float(sc)] for dx, sc in zip(rng.uniform(-8, 8, 4), rng.uniform(0, 1, 4))]
    with open(osp.join(work, 'froc_gt.json'), 'w') as f:
        json.dump(gt, f)
    with open(osp.join(work, 'froc_dets.json'), 'w') as f:
        json.dump(dets, f)


def run(args):
    subprocess.run([sys.executable] + args, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


class UIDs:
    """Numbers every UID not in ``known`` by first appearance."""

    def __init__(self, known):
        self.known, self.seen = set(known), {}

    def __call__(self, uid: str) -> str:
        if uid in self.known:
            return uid
        return self.seen.setdefault(uid, f'UID{len(self.seen) + 1}')


def dicom_dump(path: str, uids: UIDs, version: str) -> list:
    import pydicom
    ds = pydicom.dcmread(path)
    out = []

    def walk(d, prefix):
        for el in d:
            if el.VR in ('DA', 'TM', 'DT') or el.keyword == 'PixelData':
                continue
            name = f'{prefix}{el.keyword or el.tag}'
            if el.VR == 'SQ':
                for i, item in enumerate(el.value):
                    walk(item, f'{name}[{i}].')
            elif el.VR == 'UI':
                out.append(f'{name}={uids(str(el.value))}')
            else:
                out.append(f'{name}={str(el.value).replace(version, "VERSION")}')

    walk(ds, '')
    if 'PixelData' in ds:
        out.append(f'PixelData sha1={hashlib.sha1(ds.PixelData).hexdigest()}')
    return out


def image_digest(path: str) -> dict:
    import SimpleITK as sitk
    img = sitk.ReadImage(path)
    arr = sitk.GetArrayFromImage(img)
    return dict(
        sha1=hashlib.sha1(arr.tobytes()).hexdigest(),
        dtype=str(arr.dtype),
        size=img.GetSize(),
        spacing=[round(v, 6) for v in img.GetSpacing()],
        origin=[round(v, 6) for v in img.GetOrigin()],
        direction=[round(v, 6) for v in img.GetDirection()])


def case_digest(folder: str, uids: UIDs, version: str) -> dict:
    out = {}
    with open(osp.join(folder, 'lesions.json')) as f:
        res = json.load(f)
    res.pop('seconds', None)
    for k in ('config', 'checkpoint'):
        if isinstance(res.get(k), str):
            res[k] = osp.basename(res[k])
    out['lesions.json'] = json.loads(
        re.sub(r'"(\d+(?:\.\d+)+)"', lambda m: f'"{uids(m.group(1))}"'
               if m.group(1).count('.') > 3 else m.group(0), json.dumps(res)))
    with open(osp.join(folder, 'lesions.csv')) as f:
        out['lesions.csv'] = list(csv.reader(f))
    for name in sorted(os.listdir(folder)):
        path = osp.join(folder, name)
        if name.endswith('.nii.gz'):
            out[name] = image_digest(path)
        elif name.endswith('.dcm'):
            out[name] = dicom_dump(path, uids, version)
        elif name.endswith('.png') or name == 'report.html':
            out[name] = hashlib.sha1(open(path, 'rb').read()).hexdigest()
    out['files'] = sorted(os.listdir(folder))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('work')
    p.add_argument('--out')
    a = p.parse_args(argv)
    work = osp.abspath(a.work)
    if not osp.exists(osp.join(work, 'random.pth')):
        make_inputs(work)
    import pydicom

    from acsdet import __version__
    known = {str(pydicom.dcmread(f).SOPInstanceUID) for f in glob.glob(f'{work}/ct_dicom/*.dcm')}
    known |= {
        str(getattr(pydicom.dcmread(f), k))
        for f in glob.glob(f'{work}/ct_dicom/*.dcm')[:1]
        for k in ('StudyInstanceUID', 'SeriesInstanceUID', 'FrameOfReferenceUID')
    }
    out = osp.join(work, 'out')
    subprocess.run(['rm', '-rf', out], check=True)
    ckpt = osp.join(work, 'random.pth')
    common = ['--score-thr', '0.2', '--no-progress', '--save-overlays']
    run([
        'tools/infer.py', CONFIG, ckpt, f'{work}/ct_dicom', '--out-dir', f'{out}/slices',
        '--output-type', 'json', 'nifti', 'dicom-seg', 'dicom-sr'
    ] + common)
    run([
        'tools/infer.py', CONFIG, ckpt, f'{work}/ct_dicom', f'{work}/ct.nii.gz', '--out-dir',
        f'{out}/volumetric', '--volumetric', '--output-type', 'json', 'nifti'
    ] + common)
    run([
        'tools/infer.py', CONFIG, ckpt, f'{work}/ct_png', '--spacing', '0.8', '--slice-interval',
        '2', '--out-dir', f'{out}/png', '--slices', '4:20'
    ] + common)
    run([
        'tools/froc_eval.py', f'{work}/froc_dets.json', f'{work}/froc_gt.json', '--out-dir',
        f'{out}/froc'
    ])
    gt_csv = osp.join(work, 'gt3d.csv')
    with open(gt_csv, 'w') as f:
        f.write('case,x1,y1,z1,x2,y2,z2\nct_dicom,30,30,5,60,60,12\nct,40,20,2,70,50,9\n')
    run([
        'tools/froc3d_eval.py', f'{out}/volumetric', '--gt-csv', gt_csv, '--out',
        f'{out}/froc3d.json'
    ])
    uids = UIDs(known)
    digest = {}
    for folder in sorted(glob.glob(f'{out}/*/*/lesions.json')):
        case = osp.dirname(folder)
        digest[osp.relpath(case, out)] = case_digest(case, uids, __version__)
    for run_dir in ('slices', 'volumetric', 'png'):
        with open(osp.join(out, run_dir, 'summary.csv')) as f:
            rows = list(csv.DictReader(f))
        digest[f'{run_dir}/summary.csv'] = [{
            k: v
            for k, v in r.items() if k != 'seconds'
        } for r in rows]
    for name in sorted(os.listdir(f'{out}/froc')):
        data = open(osp.join(out, 'froc', name), 'rb').read()
        digest[f'froc/{name}'] = (
            hashlib.sha1(data).hexdigest() if name.endswith('.png') else data.decode())
    digest['froc3d.json'] = json.load(open(f'{out}/froc3d.json'))
    text = json.dumps(digest, indent=1, sort_keys=True)
    if a.out:
        with open(a.out, 'w') as f:
            f.write(text)
    else:
        print(text)


if __name__ == '__main__':
    main()
