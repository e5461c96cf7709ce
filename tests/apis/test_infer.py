"""Patient-CT inference: reading every format to the same volume, detection, 3D lesions, RECIST,
outputs in the input's geometry, and bad input."""
import json
import os
import os.path as osp

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from acsdet.apis import GroupingRule, SliceDetection, group_detections, recist
from acsdet.deeplesion.info import read_dl_info
from acsdet.io import CTReadError, read_ct
from acsdet.testing.ct_files import ORIENTATIONS, lps_image, stored_image, write_dicom_series

from ..helpers import CONFIG_DEMO, EPOCHS, seen_thickness

# ---- phantoms in every format ----------------------------------------------------------------


def _lps_image(vol):
    """A volume (DeepLesion's order) as the same physical image stored in LPS order."""
    return lps_image(vol.hu, vol.spacing, float(vol.to_lps([0, 0, 0])[2]))


@pytest.fixture(scope='session')
def phantom(e2e_data, tmp_path_factory):
    """One synthetic series as a DeepLesion PNG folder, NIfTI in four storage orientations and
    a DICOM series (with a second series in its folder); its lesion rows from DL_info.csv."""
    out = tmp_path_factory.mktemp('phantom')
    records, _ = read_dl_info(str(e2e_data / 'DL_info.csv'))
    series = records[0].series_dir
    png = str(e2e_data / 'Images_png' / series)
    vol = read_ct(png, dl_info=str(e2e_data / 'DL_info.csv'))
    img = _lps_image(vol)
    files = dict(png=png)
    for name, (perm, flip) in ORIENTATIONS.items():
        path = str(out / f'{name}.nii.gz')
        sitk.WriteImage(stored_image(img, perm, flip), path)
        files[name] = path
    dicom = out / 'dicom'
    uid = write_dicom_series(vol.hu, vol.spacing, dicom, positions=-vol.z_positions)
    other = write_dicom_series(vol.hu[:3] + 100, (5.0, 1.0, 1.0), dicom, seed=1)
    files['dicom'] = str(dicom)
    return dict(
        volume=vol,
        files=files,
        uid=uid,
        other_uid=other,
        records=[r for r in records if r.series_dir == series],
        data=e2e_data)


def _read(phantom, name):
    kw = dict(series=phantom['uid']) if name == 'dicom' else {}
    if name == 'png':
        kw = dict(dl_info=str(phantom['data'] / 'DL_info.csv'))
    return read_ct(phantom['files'][name], **kw)


FORMATS = ['png', 'LPS', 'RAS', 'LPI', 'coronal', 'dicom']


@pytest.mark.parametrize('name', FORMATS)
def test_read_ct_gives_the_same_volume_from_every_format(phantom, name):
    ref = phantom['volume']
    vol = _read(phantom, name)
    assert vol.hu.shape == ref.hu.shape
    np.testing.assert_array_equal(vol.hu, ref.hu)  # slope 0.5 / intercept -1024 applied exactly
    np.testing.assert_allclose(vol.spacing, ref.spacing, rtol=1e-5)
    corners = np.array([[0, 0, 0], [191, 0, 0], [0, 191, 5], [17.5, 40.25, 9]])
    np.testing.assert_allclose(vol.to_lps(corners), ref.to_lps(corners), atol=1e-3)
    if name not in ('png', 'dicom'):
        # stored indices map back onto the same physical points through the file's geometry
        stored = sitk.ReadImage(phantom['files'][name])
        perm, flip = ORIENTATIONS[name]  # relative to LPS; the volume's slice axis points I
        assert vol.to_stored[0] == perm and vol.to_stored[1] == (flip[0], flip[1], not flip[2])
        for c in corners:
            p = stored.TransformContinuousIndexToPhysicalPoint(
                [float(v) for v in vol.to_stored_index(c)])
            np.testing.assert_allclose(p, vol.to_lps(c), atol=1e-3)


def test_dicom_folder_with_two_series_lists_them(phantom):
    with pytest.raises(CTReadError) as e:
        read_ct(phantom['files']['dicom'])
    assert '2 CT series' in str(e.value) and phantom['uid'] in str(e.value)
    assert phantom['other_uid'] in str(e.value)
    small = read_ct(phantom['files']['dicom'], series=phantom['other_uid'])
    np.testing.assert_array_equal(small.hu, phantom['volume'].hu[:3] + 100)


# ---- detection from every format -------------------------------------------------------------


@pytest.fixture(scope='session')
def detector(e2e_trained):
    from acsdet.apis import LesionDetector
    work = e2e_trained[0]
    return LesionDetector(
        CONFIG_DEMO, str(work / 'train' / f'epoch_{EPOCHS}.pth'), score_thr=0.3, batch_size=4)


@pytest.fixture(scope='session')
def detected(phantom, detector, tmp_path_factory):
    """Every format through the detector around the first lesion's key slice, written out."""
    out = tmp_path_factory.mktemp('infer')
    rec = phantom['records'][0]
    key = sorted(int(n[:-4]) for n in os.listdir(phantom['files']['png'])).index(rec.key_slice)
    results = {}
    from acsdet.apis import write_case
    for name in FORMATS:
        res = detector(_read(phantom, name), (key - 3, key + 4))
        folder = write_case(res, str(out), case=name, save_masks=True, save_overlays=True)
        results[name] = (res, folder)
    return dict(key=key, record=rec, results=results)


def test_the_lesion_is_found_at_its_physical_position_from_every_format(phantom, detected):
    rec, key = detected['record'], detected['key']
    vol = phantom['volume']
    x1, y1, x2, y2 = rec.bbox  # inclusive pixels of the key slice
    true_centre = vol.to_lps(np.array([(x1 + x2) / 2, (y1 + y2) / 2, key]))
    ref = detected['results']['png'][0].lesions
    assert ref, 'the trained model found nothing near a training lesion'
    for name, (res, folder) in detected['results'].items():
        les = res.lesions
        assert len(les) == len(ref), name
        for a, b in zip(les, ref):  # the same detections, the same physical places
            np.testing.assert_allclose(a.key_box_px, b.key_box_px, atol=1e-2)
            assert a.score == pytest.approx(b.score, abs=1e-3)
            np.testing.assert_allclose(a.center_lps_mm, b.center_lps_mm, atol=1e-2)
            np.testing.assert_allclose(a.box_lps_mm['min'], b.box_lps_mm['min'], atol=1e-2)
        # the known lesion: a lesion spans its key slice, its 3D box in LPS mm holds the true
        # centre (within half a voxel), and its detection on the key slice is centred in the
        # true box
        tol = 0.5 * np.array([vol.spacing[2], vol.spacing[1], vol.spacing[0]])
        hit = [
            le for le in les if le.slices[0] <= key <= le.slices[1] and np.all(
                np.array(le.box_lps_mm['min']) -
                tol <= true_centre) and np.all(true_centre <= np.array(le.box_lps_mm['max']) + tol)
        ]
        assert hit, (name, les[:3], true_centre)
        on_key = [
            d['box'] for d in res.detections if d['lesion'] == hit[0].id and d['slice'] == key
        ]
        bx = (on_key[0][0] + on_key[0][2]) / 2, (on_key[0][1] + on_key[0][3]) / 2
        assert x1 <= bx[0] <= x2 + 1 and y1 <= bx[1] <= y2 + 1
        if name not in ('png', 'dicom'):  # stored indices agree with the file's own geometry
            img = sitk.ReadImage(phantom['files'][name])
            p = img.TransformContinuousIndexToPhysicalPoint(hit[0].center_stored_index)
            np.testing.assert_allclose(p, hit[0].center_lps_mm, atol=0.02)
        saved = json.loads(open(osp.join(folder, 'lesions.json')).read())
        assert saved['version'] == '1.0' and saved['lesions'] == [le.to_json() for le in les]
        assert open(osp.join(folder, 'lesions.csv')).read().count('\n') == len(les) + 1
        assert 'lesion_001.png' in open(osp.join(folder, 'report.html')).read()


@pytest.mark.parametrize('name', ['LPS', 'RAS', 'LPI', 'coronal', 'dicom'])
def test_label_map_overlays_the_input_exactly(phantom, detected, name):
    res, folder = detected['results'][name]
    lab = sitk.ReadImage(osp.join(folder, 'lesions.nii.gz'))
    if name == 'dicom':
        src = _read(phantom, name).reference
    else:
        src = sitk.ReadImage(phantom['files'][name])
    assert lab.GetSize() == src.GetSize()
    np.testing.assert_allclose(lab.GetSpacing(), src.GetSpacing(), rtol=1e-6)
    np.testing.assert_allclose(lab.GetOrigin(), src.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(lab.GetDirection(), src.GetDirection(), atol=1e-6)
    # the labelled voxels are the same places in space as in the LPS-ordered result
    arr = sitk.GetArrayFromImage(lab)  # (z, y, x) as stored
    zyx = np.argwhere(arr > 0)
    assert len(zyx) == int((res.label_map > 0).sum()) > 0
    pts = np.array([lab.TransformIndexToPhysicalPoint([int(i) for i in p[::-1]]) for p in zyx])
    ref = np.argwhere(res.label_map > 0)[:, ::-1]  # (x, y, z)
    ref_pts = phantom['volume'].to_lps(ref)
    np.testing.assert_allclose(
        np.array(sorted(map(tuple, np.round(pts, 2)))),
        np.array(sorted(map(tuple, np.round(ref_pts, 2)))),
        atol=0.02)


# ---- grouping and RECIST ---------------------------------------------------------------------


def _d(k, box, score=0.9):
    return SliceDetection(k, np.array(box, float), score)


def test_grouping_links_adjacent_slices_splits_gaps_and_keeps_two_lesions_apart():
    dets = [
        _d(3, [10, 10, 30, 30], 0.6),
        _d(4, [11, 10, 31, 30], 0.9),  # the same lesion, key slice 4
        _d(5, [12, 11, 31, 31], 0.7),
        _d(4, [60, 60, 80, 80], 0.8),  # a second lesion on slice 4
        _d(8, [10, 10, 30, 30], 0.5),  # after a gap (slices 6, 7): a third lesion
        _d(5, [40, 40, 50, 50], 0.4),  # no overlap with anything
    ]
    lesions = group_detections(dets)
    assert [les.slice_range for les in lesions] == [(3, 5), (4, 4), (8, 8), (5, 5)]
    assert lesions[0].key.slice_index == 4 and lesions[0].score == 0.9
    np.testing.assert_allclose(lesions[0].box_3d(), [10, 10, 3, 31, 31, 5])
    # an IoU just under the threshold does not link
    assert len(group_detections([_d(1, [0, 0, 10, 10]), _d(2, [4, 0, 14, 10])])) == 2
    assert len(group_detections([_d(1, [0, 0, 10, 10]), _d(2, [3, 0, 13, 10])])) == 1
    # without the gap bridge (max_gap=0) slices 5 and 8 end and start lesions as before
    assert len(group_detections(dets, rule=GroupingRule(max_gap=0))) == 4


def test_grouping_bridges_a_missed_slice_but_not_two():
    """A lesion missed on one slice stays one lesion; a gap of two slices makes two."""
    one_gap = [_d(k, [10, 10, 30, 30]) for k in (2, 3, 5, 6)]
    assert [les.slice_range for les in group_detections(one_gap)] == [(2, 6)]
    assert len(group_detections(one_gap, rule=GroupingRule(max_gap=0))) == 2
    two_gap = [_d(k, [10, 10, 30, 30]) for k in (2, 3, 6, 7)]
    assert len(group_detections(two_gap)) == 2
    assert len(group_detections(two_gap, rule=GroupingRule(max_gap=2))) == 1


def test_grouping_keeps_a_lesions_small_end_sections_by_containment():
    """A lesion's last slice shows a small section inside the previous box (IoU 0.16 < 0.5):
    linked by containment (intersection over the smaller 1.0 >= 0.8), not without it."""
    dets = [_d(3, [10, 10, 30, 30], 0.9), _d(4, [16, 16, 24, 24], 0.6)]
    assert len(group_detections(dets)) == 1
    assert len(group_detections(dets, rule=GroupingRule(contain_thr=None))) == 2
    beside = [_d(3, [10, 10, 30, 30], 0.9), _d(4, [26, 16, 34, 24], 0.6)]  # half outside
    assert len(group_detections(beside)) == 2


def test_grouping_links_one_to_one_so_two_lesions_never_merge_through_a_big_box():
    """Slice 4 holds two small lesions side by side; slice 5 one box spanning both (IoU 0.5
    with each): union-find made one lesion of all three; one-to-one links the better pair."""
    dets = [
        _d(4, [10, 10, 30, 30], 0.9),
        _d(4, [30, 10, 50, 30], 0.8),
        _d(5, [10, 10, 50, 30], 0.7),
        _d(6, [11, 10, 50, 30], 0.6)
    ]
    lesions = group_detections(dets, iou_thr=0.45)
    assert sorted(les.slice_range for les in lesions) == [(4, 4), (4, 6)]
    assert lesions[0].key.score == 0.9 and len(lesions[0].members) == 3


def test_grouping_cuts_a_chain_deeper_than_its_size_at_its_weakest_link():
    """A 20 mm structure detected on 100 slices of 2 mm (200 mm) is cut into pieces of at most
    2 x 20 mm + one slice each end (22 slices); a 20 mm lesion over 10 slices stays whole; the
    cut falls where the score dips."""
    table = [_d(k, [10, 10, 30, 30], 0.6) for k in range(100)]
    pieces = group_detections(table, slice_mm=2.0, pixel_mm=(1.0, 1.0))
    assert sum(len(p.members) for p in pieces) == 100 and len(pieces) >= 5
    assert all((p.slice_range[1] - p.slice_range[0] + 1) * 2.0 <= 2 * 20 + 2 * 2 for p in pieces)
    assert len(group_detections(table)) == 1  # no spacing given: no bound
    assert len(group_detections(table, rule=GroupingRule(depth_ratio=None), slice_mm=2.0)) == 1
    lesion = [_d(k, [10, 10, 30, 30], 0.9 - 0.05 * abs(k - 5)) for k in range(10)]
    assert len(group_detections(lesion, slice_mm=2.0)) == 1
    # a lesion (slices 0-9, scores peaking at 5) running into a structure (10-39, score 0.3)
    chain = lesion + [_d(k, [10, 10, 30, 30], 0.3) for k in range(10, 40)]
    first = max(group_detections(chain, slice_mm=2.0), key=lambda les: les.score)
    assert first.slice_range == (0, 9)
    with pytest.raises(ValueError, match='depth_ratio must be > 0'):
        GroupingRule(depth_ratio=0)


@pytest.mark.parametrize('angle', [0, 20, 45, 90, 135])
@pytest.mark.parametrize('axes', [(30, 12), (8, 3), (20, 19), (50.5, 24.2)])
def test_recist_of_known_ellipses_is_within_one_pixel(angle, axes):
    a, b = axes
    yy, xx = np.mgrid[0:160, 0:160].astype(float)
    t = np.radians(angle)
    u = (xx - 80.3) * np.cos(t) + (yy - 79.6) * np.sin(t)
    v = -(xx - 80.3) * np.sin(t) + (yy - 79.6) * np.cos(t)
    r = recist((u / a)**2 + (v / b)**2 <= 1)
    assert abs(r['long_mm'] - 2 * a) <= 1 and abs(r['short_mm'] - 2 * b) <= 1
    (p, q), (s, e) = np.array(r['long_axis']), np.array(r['short_axis'])
    cos = abs(np.dot(q - p, e - s)) / (np.linalg.norm(q - p) * np.linalg.norm(e - s))
    assert cos < 0.05  # perpendicular
    # pixel spacing scales the lengths: 0.7 mm pixels
    r2 = recist((u / a)**2 + (v / b)**2 <= 1, (0.7, 0.7))
    assert r2['long_mm'] == pytest.approx(0.7 * r['long_mm'])


# ---- bad input -------------------------------------------------------------------------------


def test_bad_inputs_are_clear_errors(phantom, tmp_path):
    with pytest.raises(CTReadError, match='nothere.nii.gz: no such file'):
        read_ct(str(tmp_path / 'nothere.nii.gz'))
    (tmp_path / 'notes.txt').write_text('hello')
    with pytest.raises(CTReadError, match=r'notes\.txt: unsupported file type'):
        read_ct(str(tmp_path / 'notes.txt'))
    (tmp_path / 'broken.nii.gz').write_bytes(b'not a nifti file at all')
    with pytest.raises(CTReadError, match=r'broken\.nii\.gz: unreadable'):
        read_ct(str(tmp_path / 'broken.nii.gz'))
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((32, 32), np.int16)), str(tmp_path / '2d.nrrd'))
    with pytest.raises(CTReadError, match=r'2d\.nrrd: .*3 dimensions'):
        read_ct(str(tmp_path / '2d.nrrd'))
    hu = phantom['volume'].hu[:5]
    write_dicom_series(hu, (2.0, 1.0, 1.0), tmp_path / 'mr', modality='MR')
    with pytest.raises(
            CTReadError, match='mr: no CT series; left out .*modality MR, not a CT image'):
        read_ct(str(tmp_path / 'mr'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(CTReadError, match='empty: holds no DICOM file'):
        read_ct(str(tmp_path / 'empty'))


def test_dicom_oddities_are_warned_about(phantom, tmp_path):
    hu = phantom['volume'].hu[:6]
    write_dicom_series(
        hu, (2.0, 1.0, 1.0), tmp_path / 'uneven', positions=np.array([0, 2, 4, 7, 9, 11.0]))
    with pytest.warns(UserWarning, match='inconsistent slice spacing'):
        vol = read_ct(str(tmp_path / 'uneven'))
    np.testing.assert_allclose(vol.z_positions, [0, 2, 4, 7, 9, 11])  # the real positions
    assert any('inconsistent' in w for w in vol.warnings)
    write_dicom_series(hu, (2.0, 1.0, 1.0), tmp_path / 'corrupt')
    (tmp_path / 'corrupt' / 'zz_broken.dcm').write_bytes(b'DICM but not really')
    with pytest.warns(UserWarning, match='zz_broken.dcm'):
        vol = read_ct(str(tmp_path / 'corrupt'))
    assert vol.hu.shape[0] == 6


def test_infer_cli_keeps_going_past_a_bad_input(phantom, e2e_trained, tmp_path, capsys):
    from tools import infer
    ckpt = str(e2e_trained[0] / 'train' / f'epoch_{EPOCHS}.pth')
    good = phantom['files']['RAS']
    (tmp_path / 'bad.nii.gz').write_bytes(b'garbage')
    code = infer.main([
        CONFIG_DEMO, ckpt,
        str(tmp_path / 'bad.nii.gz'), good, '--out-dir',
        str(tmp_path / 'out'), '--slices', '20:23', '--save-masks', '--no-progress'
    ])
    out = capsys.readouterr()
    assert code == 1
    assert 'bad.nii.gz: unreadable' in out.err and '1 case(s) done, 1 failed' in out.out
    assert sorted(os.listdir(tmp_path / 'out')) == ['RAS', 'summary.csv']  # nothing partial for it
    assert {'lesions.json', 'lesions.csv', 'report.html',
            'lesions.nii.gz'} <= set(os.listdir(tmp_path / 'out' / 'RAS'))
    saved = json.loads((tmp_path / 'out' / 'RAS' / 'lesions.json').read_text())
    assert saved['slices_processed'] == [20, 23]


def test_alignshift_model_receives_the_volume_slice_spacing(phantom, tmp_path):
    """Patient-CT inference with an AlignShift model: the volume's slice spacing is the
    thickness every AlignShift layer sees."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from acsdet.apis import LesionDetector
    from acsdet.ops.shift import AlignShiftConv
    from mmdet.registry import MODELS
    config = tmp_path / 'alignshift_demo.py'
    config.write_text(f'_base_ = {CONFIG_DEMO!r}\n'
                      "model = dict(type='ThicknessAwareMaskRCNN', "
                      "backbone=dict(conv_mode='alignshift'))\n")
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(config)).model)
    torch.save({'state_dict': model.state_dict()}, tmp_path / 'random.pth')
    det = LesionDetector(str(config), str(tmp_path / 'random.pth'), score_thr=0.0, batch_size=2)
    vol = _read(phantom, 'LPS')
    with seen_thickness(det.model) as seen:
        res = det(vol, (3, 5))
    layers = [n for n, m in det.model.named_modules() if isinstance(m, AlignShiftConv) and m.shift]
    assert layers and res.slices == (3, 5) and set(layers) <= set(seen)
    for calls in (seen[n] for n in layers):
        assert len(calls) == 1  # one batch of 2 key slices
        torch.testing.assert_close(calls[0], torch.full((2, ), float(vol.spacing[0])))
