"""tools/froc3d_eval.py: lesions.json of whole CTs scored against label maps, box CSVs and
DeepLesion's manual 3D test set, in any storage orientation of the CT."""
import csv
import functools
import json
import os.path as osp
import pickle

import numpy as np
import pytest
import SimpleITK as sitk

from acsdet.export import write_case
from acsdet.inference import GroupingRule, restore_lesions
from acsdet.io import read_ct
from acsdet.testing.ct_files import (ORIENTATIONS, head_to_feet_phantom, lps_image,
                                     perfect_predictions, phantom_lesion_labels, stored_image,
                                     write_png_series)
from tools import froc3d_eval

SPACING = (2.0, 0.8, 0.8)
Z, SIZE = 24, 64


@pytest.fixture(scope='module')
def cases(tmp_path_factory):
    """One phantom CT stored coronally (axes permuted and flipped), its GT label map in the same
    stored geometry, a GT box CSV (stored voxels and LPS mm), and lesions.json of perfect and of
    one-slice-shifted detections."""
    out = tmp_path_factory.mktemp('froc3d')
    hu, lesions = head_to_feet_phantom(num_slices=Z, size=SIZE)
    labels = phantom_lesion_labels(lesions, (Z, SIZE, SIZE))
    perm, flip = ORIENTATIONS['coronal']
    ct_path = str(out / 'scan.nii.gz')
    sitk.WriteImage(stored_image(lps_image(hu, SPACING), perm, flip), ct_path)
    gt_dir = out / 'gt'
    gt_dir.mkdir()
    label_img = stored_image(lps_image(labels, SPACING), perm, flip)
    sitk.WriteImage(label_img, str(gt_dir / 'scan.nii.gz'))
    stored = sitk.GetArrayFromImage(label_img)  # (k, j, i)
    rows_vox, rows_lps = [], []
    for i in range(1, 4):
        k, j, ii = np.nonzero(stored == i)
        lo, hi = (int(ii.min()), int(j.min()), int(k.min())), (int(ii.max()), int(j.max()),
                                                               int(k.max()))
        rows_vox.append(['scan', *lo, *hi])
        rows_lps.append([
            'scan', *label_img.TransformIndexToPhysicalPoint(lo),
            *label_img.TransformIndexToPhysicalPoint(hi)
        ])
    csvs = {}
    for units, rows in (('voxel', rows_vox), ('lps', rows_lps)):
        csvs[units] = str(out / f'gt_{units}.csv')
        with open(csvs[units], 'w', newline='') as f:
            w = csv.writer(f)
            w.writerow(['case', 'x1', 'y1', 'z1', 'x2', 'y2', 'z2'])
            w.writerows(rows)
    vol = read_ct(ct_path)
    assert np.array_equal(vol.hu, hu)  # the reader's frame is DeepLesion's order
    runs = {}
    for name, shift in (('perfect', 0), ('shifted', 1)):
        result = restore_lesions(vol, perfect_predictions(labels, shift), (0, Z), 0.0,
                                 GroupingRule(0.3))
        assert len(result.lesions) == 3
        runs[name] = write_case(result, str(out / name))
    return dict(out=out, gt_dir=str(gt_dir), csv=csvs, runs=runs, labels=labels)


def _eval(*args):
    return froc3d_eval.main([str(a) for a in args])


def _error(capsys, *args) -> str:
    """The one-line error (exit 2) of a run of ``args``."""
    with pytest.raises(SystemExit) as e:
        _eval(*args)
    assert e.value.code == 2
    msg = capsys.readouterr().err.strip()
    assert '\n' not in msg
    return msg


def test_perfect_detections_score_one_from_label_maps_and_csvs(cases, capsys):
    folder = cases['out'] / 'perfect'
    results = [
        _eval(folder, '--gt-label-maps', cases['gt_dir']),
        _eval(folder, '--gt-label-maps', cases['gt_dir'], '--gt-lesions', 'labels'),
        _eval(folder, '--gt-csv', cases['csv']['voxel']),
        _eval(folder, '--gt-csv', cases['csv']['lps'], '--gt-units', 'lps'),
    ]
    for res, subsets in results:
        assert res.num_lesions == 3 and res.num_images == 1
        assert res.average == 1.0 and (res.sensitivities == 1.0).all()
    # with the strictest overlap the boxes still agree exactly: IoU 1
    res, _ = _eval(folder, '--gt-csv', cases['csv']['voxel'], '--overlap', 'iou', '--thr', '1')
    assert res.average == 1.0
    assert '3D FROC (IOU >= 1, 3D, 1 volumes)' in capsys.readouterr().out


def test_one_slice_lower_changes_what_it_should(cases, tmp_path):
    """Each lesion spans 5 slices; one slice lower its box meets the GT's in 4 of 6 slices:
    IoU 2/3 (same in-plane box), IoBB 4/5."""
    folder = cases['out'] / 'shifted'
    sources = [('--gt-label-maps', cases['gt_dir']), ('--gt-csv', cases['csv']['voxel'])]
    for src in sources:
        assert _eval(folder, *src, '--overlap', 'iou', '--thr', '0.66')[0].average == 1.0
        assert _eval(folder, *src, '--overlap', 'iou', '--thr', '0.67')[0].average == 0.0
        assert _eval(folder, *src, '--overlap', 'iobb', '--thr', '0.8')[0].average == 1.0
        res = _eval(folder, *src, '--overlap', 'iobb', '--thr', '0.81')[0]
        assert res.average == 0.0 and res.curve_fps[-1] == 3.0  # three FPs in one volume
    out = tmp_path / 'froc3d.json'
    _eval(folder, *sources[0], '--overlap', 'iou', '--thr', '0.66', '--out', out)
    doc = json.loads(out.read_text())
    assert doc['average'] == 1.0 and doc['volumes'] == 1 and doc['lesions'] == 3
    assert doc['cases'] == ['scan'] and doc['setting']['overlap'] == 'iou'


def test_size_subsets_count_the_lesions_by_their_in_plane_size(cases):
    _, subsets = _eval(cases['out'] / 'perfect', '--gt-label-maps', cases['gt_dir'], '--sizes', '8',
                       '9')
    # long sides 0.8 mm x (11, 9, 7) px... measured from the label map itself
    sizes = []
    for i in range(1, 4):
        _, ys, xs = np.nonzero(cases['labels'] == i)
        sizes.append(max(np.ptp(xs) + 1, np.ptp(ys) + 1) * 0.8)
    want = {
        '<8mm': sum(s < 8 for s in sizes),
        '8-9mm': sum(8 <= s < 9 for s in sizes),
        '>=9mm': sum(s >= 9 for s in sizes)
    }
    assert {k: r.num_lesions for k, r in subsets.items()} == {k: v for k, v in want.items() if v}
    assert sum(want.values()) == 3 and len([v for v in want.values() if v]) >= 2


def test_bad_input_is_one_line_naming_it(cases, tmp_path, capsys):
    folder = cases['out'] / 'perfect'
    error = functools.partial(_error, capsys)

    # a label map in another geometry
    other = tmp_path / 'other'
    other.mkdir()
    img = sitk.ReadImage(f'{cases["gt_dir"]}/scan.nii.gz')
    img.SetSpacing((0.8, 2.0, 0.7))
    sitk.WriteImage(img, str(other / 'scan.nii.gz'))
    msg = error(folder, '--gt-label-maps', other)
    assert 'scan.nii.gz: spacing [0.8, 2.0, 0.7] differs from the CT' in msg and '\n' not in msg
    # a case without GT, and GT without a lesions.json
    sitk.WriteImage(img, str(other / 'scan2.nii.gz'))
    assert "no lesions.json for GT case(s) ['scan2']" in error(folder, '--gt-label-maps', other)
    rows = tmp_path / 'gt.csv'
    rows.write_text('case,x1,y1,z1,x2,y2,z2\nother,1,1,1,5,5,5\n')
    assert "no ground truth for detected case(s) ['scan']" in error(folder, '--gt-csv', rows)
    # NaN and inverted boxes
    rows.write_text('case,x1,y1,z1,x2,y2,z2\nscan,1,1,nan,5,5,5\n')
    assert 'gt.csv, line 2: needs a case and six finite numbers' in error(folder, '--gt-csv', rows)
    rows.write_text('case,x1,y1,z1,x2,y2,z2\nscan,1,1,x,5,5,5\n')
    assert 'gt.csv, line 2: a coordinate is not a number' in error(folder, '--gt-csv', rows)
    # a lesions.json without 3D boxes
    bad = tmp_path / 'old' / 'scan'
    bad.mkdir(parents=True)
    doc = json.loads((folder / 'scan' / 'lesions.json').read_text())
    for les in doc['lesions']:
        del les['box_voxel']
    (bad / 'lesions.json').write_text(json.dumps(doc))
    msg = error(bad / 'lesions.json', '--gt-csv', cases['csv']['voxel'])
    assert 'lesions.json: lesion 0 has no 3D box' in msg
    # two lesions.json of one case
    twin = tmp_path / 'twin' / 'scan'
    twin.mkdir(parents=True)
    (twin / 'lesions.json').write_text((folder / 'scan' / 'lesions.json').read_text())
    msg = error(folder, twin.parent, '--gt-csv', cases['csv']['voxel'])
    assert "case 'scan' has two lesions.json" in msg


def test_only_paired_scores_the_pairs_and_lists_the_rest(cases, tmp_path, capsys):
    rows = tmp_path / 'gt.csv'
    text = open(cases['csv']['voxel']).read()
    rows.write_text(text + 'missing,1,1,1,5,5,5\n')
    res, _ = _eval(cases['out'] / 'perfect', '--gt-csv', rows, '--only-paired')
    assert res.num_images == 1 and res.average == 1.0
    assert "left out 1 GT cases without lesions.json: ['missing']" in capsys.readouterr().out


def test_deeplesion_sub_volumes_end_to_end(tmp_path):
    """A PNG series with two runs of slices -> one NIfTI per run named as the manual 3D test set
    -> lesions.json -> scored against a pickle whose z are the series' PNG numbers."""
    from data_converters import deeplesion_to_nifti
    hu, lesions = head_to_feet_phantom(num_slices=Z, size=SIZE)
    labels = phantom_lesion_labels(lesions, (Z, SIZE, SIZE))
    series = tmp_path / 'Images_png' / '000007_02_01'
    write_png_series(hu[:14], str(series), first_index=40)  # PNGs 040 .. 053
    write_png_series(hu[14:], str(series), first_index=120)  # PNGs 120 .. 129
    written, failed = deeplesion_to_nifti.main([
        str(series), '--out-dir',
        str(tmp_path / 'nifti'), '--spacing', '0.8', '--slice-interval', '2', '--sub-volumes'
    ])
    assert not failed
    assert [p.rsplit('/', 1)[1]
            for p in written] == ['000007_02_01_040-053.nii.gz', '000007_02_01_120-129.nii.gz']
    gt, runs = {}, [(0, 14, 40), (14, Z, 120)]
    for path, (a, b, top) in zip(written, runs):
        vol = read_ct(path)
        assert np.array_equal(vol.hu, hu[a:b])
        sub = labels[a:b]
        preds = [(k - a, boxes, scores, masks)
                 for k, boxes, scores, masks in perfect_predictions(labels) if a <= k < b]
        write_case(
            restore_lesions(vol, preds, (0, b - a), 0.0, GroupingRule(0.3)), str(tmp_path / "out"))
        boxes = []
        for i in np.unique(sub[sub > 0]):
            k, y, x = np.nonzero(sub == i)
            boxes.append([x.min(), y.min(), top + k.min(), x.max(), y.max(), top + k.max()])
        gt[vol.name] = np.array(boxes, float)
    pkl = tmp_path / 'manual.pkl'
    with open(pkl, 'wb') as f:
        pickle.dump({'test': gt, 'val': {}}, f, protocol=2)
    res, _ = _eval(tmp_path / 'out', '--gt-deeplesion-3d', pkl)
    assert res.num_images == 2 and res.num_lesions == sum(len(v) for v in gt.values())
    assert res.num_lesions >= 3 and res.average == 1.0
    # the same boxes one PNG number off in z: IoU 2/3 for the 5-slice lesion(s) wholly inside
    gt_off = {k: v + [0, 0, 1, 0, 0, 1] for k, v in gt.items()}
    with open(pkl, 'wb') as f:
        pickle.dump({'test': gt_off}, f, protocol=2)
    res, _ = _eval(tmp_path / 'out', '--gt-deeplesion-3d', pkl, '--overlap', 'iou', '--thr', '0.99')
    assert res.average == 0.0


def test_tools_infer_then_3d_evaluation_agree_across_ground_truth_forms(
        model_files, cases, tmp_path):
    """A (random) model's lesions.json of the coronally stored CT, scored from the label map and
    from the box CSV in voxels and in mm: the same numbers, whatever they are."""
    from tools import infer
    out = tmp_path / 'infer'
    code = infer.main([
        *model_files,
        str(cases['out'] / 'scan.nii.gz'), '--out-dir',
        str(out), '--score-thr', '0.05', '--no-progress'
    ])
    assert code == 0
    doc = json.loads((out / 'scan' / 'lesions.json').read_text())
    assert len(doc['lesions']) > 0
    results = [
        _eval(out, '--gt-label-maps', cases['gt_dir'], '--overlap', 'iogt', '--thr', '0.1')[0],
        _eval(out, '--gt-csv', cases['csv']['voxel'], '--overlap', 'iogt', '--thr', '0.1')[0],
        _eval(out, '--gt-csv', cases['csv']['lps'], '--gt-units', 'lps', '--overlap', 'iogt',
              '--thr', '0.1')[0],
    ]
    for r in results[1:]:
        np.testing.assert_array_equal(r.curve_fps, results[0].curve_fps)
        np.testing.assert_array_equal(r.curve_sensitivities, results[0].curve_sensitivities)
    assert len(results[0].curve_fps) == len(doc['lesions']) + 1


def test_a_manifest_names_cases_and_nrrd_label_maps_read_alike(cases, tmp_path, capsys):
    """Detections listed in a manifest CSV (paths relative to it, a case column) and ground
    truth as NRRD score as the case folder and the NIfTI do."""
    nrrd = tmp_path / 'gt'
    nrrd.mkdir()
    img = sitk.ReadImage(f'{cases["gt_dir"]}/scan.nii.gz')
    sitk.WriteImage(img, str(nrrd / 'ct-7.nrrd'))
    manifest = tmp_path / 'runs.csv'
    rel = osp.relpath(cases['out'] / 'shifted' / 'scan' / 'lesions.json', tmp_path)
    manifest.write_text(f'case,lesions_json\nct-7,{rel}\n')
    a = _eval(manifest, '--gt-label-maps', nrrd, '--overlap', 'iou', '--thr', '0.5')[0]
    b = _eval(cases['out'] / 'shifted', '--gt-label-maps', cases['gt_dir'], '--overlap', 'iou',
              '--thr', '0.5')[0]
    assert a.num_images == 1 and a.num_lesions == 3 and a.average == b.average == 1.0
    np.testing.assert_array_equal(a.curve_sensitivities, b.curve_sensitivities)
    manifest.write_text('path\nx\n')
    with pytest.raises(SystemExit):
        _eval(manifest, '--gt-label-maps', nrrd)
    assert 'runs.csv: a manifest needs a lesions_json column' in capsys.readouterr().err


def test_p3d_scores_ground_truth_drawn_on_one_slice(cases, tmp_path, capsys):
    """Each lesion boxed on its middle slice only (as a DeepLesion key-slice mark): P3D finds
    all three with the 3D detections; a CSV box on several slices is refused in P3D."""
    rows = [r.split(',') for r in open(cases['csv']['voxel']).read().split()[1:]]
    one = tmp_path / 'one_slice.csv'
    lines = ['case,x1,y1,z1,x2,y2,z2']
    for case, x1, y1, z1, x2, y2, z2 in rows:
        # stored coronally: stored y is the slice axis (S); the middle slice of the lesion
        mid = (int(y1) + int(y2)) // 2
        lines.append(f'{case},{x1},{mid},{z1},{x2},{mid},{z2}')
    one.write_text('\n'.join(lines) + '\n')
    res = _eval(cases['out'] / 'perfect', '--gt-csv', one, '--mode', 'p3d', '--overlap', 'iou',
                '--thr', '0.5')[0]
    assert res.num_lesions == 3 and res.average == 1.0
    with pytest.raises(SystemExit):
        _eval(cases['out'] / 'perfect', '--gt-csv', cases['csv']['voxel'], '--mode', 'p3d')
    assert 'P3D ground truth lies on one slice' in capsys.readouterr().err


def test_boxes_outside_the_ct_and_numbers_as_strings_are_refused(cases, tmp_path, capsys):
    """Issue 34 items 13, 18: named by file and row, one line, exit 2."""
    folder = cases['out'] / 'perfect'
    error = functools.partial(_error, capsys)

    rows = tmp_path / 'gt.csv'
    rows.write_text('case,x1,y1,z1,x2,y2,z2\nscan,1,1,1,5,5,5\nscan,1,1,1,5,5,500\n')
    assert 'gt.csv, line 3: box' in error(folder, '--gt-csv', rows)
    rows.write_text('case,x1,y1,z1,x2,y2,z2\nscan,-3,1,1,5,5,5\n')
    assert 'gt.csv, line 2: box' in error(folder, '--gt-csv', rows)
    doc = json.loads((folder / 'scan' / 'lesions.json').read_text())
    for bad, want in (({
            'z': [str(v) for v in doc['lesions'][0]['box_voxel']['z']]
    }, 'no 3D box'), ({
            'z': [0, 500]
    }, 'lies outside the CT')):
        edited = json.loads(json.dumps(doc))
        edited['lesions'][0]['box_voxel'].update(bad)
        case = tmp_path / want.replace(' ', '_') / 'scan'
        case.mkdir(parents=True)
        (case / 'lesions.json').write_text(json.dumps(edited))
        msg = error(case / 'lesions.json', '--gt-csv', cases['csv']['voxel'])
        assert 'lesions.json: lesion 0' in msg and want in msg
    manifest = tmp_path / 'dets.csv'
    manifest.write_text(f'lesions_json,case\n{folder / "scan" / "lesions.json"},scan\n,other\n')
    assert 'dets.csv, line 3: no lesions_json' in error(manifest, '--gt-csv', cases['csv']['voxel'])


def test_label_values_as_large_as_4e9_are_lesions_not_a_memory_error(cases, tmp_path):
    img = sitk.ReadImage(f'{cases["gt_dir"]}/scan.nii.gz')
    arr = sitk.GetArrayFromImage(img).astype(np.uint32)
    arr[arr == 2] = 4_000_000_000
    big = sitk.GetImageFromArray(arr)
    big.CopyInformation(img)
    gt = tmp_path / 'gt'
    gt.mkdir()
    sitk.WriteImage(big, str(gt / 'scan.nii.gz'))
    res, _ = _eval(cases['out'] / 'perfect', '--gt-label-maps', gt, '--gt-lesions', 'labels')
    assert res.num_lesions == 3 and res.average == 1.0


def test_out_never_replaces_an_input_or_a_case_file(cases, capsys):
    """Issue 34 item 1: --out over the GT CSV it read, or over a lesions.json, is refused before
    the work; both files stay as they were."""
    folder = cases['out'] / 'perfect'
    for target in (cases['csv']['voxel'], folder / 'scan' / 'lesions.json'):
        before = open(target, 'rb').read()
        with pytest.raises(SystemExit) as e:
            _eval(folder, '--gt-csv', cases['csv']['voxel'], '--out', target)
        assert e.value.code == 2 and 'refusing' in capsys.readouterr().err
        assert open(target, 'rb').read() == before
