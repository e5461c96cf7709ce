"""Multi-slice loading, the pipeline transforms and DeepLesionDataset on converter output."""
import os

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import acsdet.all_modules  # noqa: F401  (registers acsdet's modules)
from acsdet.datasets.slices import SliceReader, load_slice_stack
from acsdet.datasets.transforms.augment import warp_channels
from acsdet.deeplesion.png import decode_slice
from acsdet.engine.cli import load_config
from acsdet.preparation.deeplesion_coco import convert_deeplesion
from acsdet.testing.synthetic import make_synthetic_deeplesion
from mmdet.registry import DATASETS, TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmdet.structures.mask import BitmapMasks

from ..helpers import ROOT


def write_series(folder, first, last, skip=()):
    os.makedirs(folder, exist_ok=True)
    for k in range(first, last + 1):
        if k not in skip:
            cv2.imwrite(str(folder / f'{k:03d}.png'), np.full((4, 5), 10 * k + 32768, np.uint16))


def expected_stack(key, t, d, first, last, missing=()):
    """10 * (interpolated index), slice by slice, each position with its own fraction; a missing
    slice is replaced by the nearest existing one towards the key slice."""

    def value(i):
        i = min(max(i, first), last)
        while i in missing:
            i += -1 if i > key else 1
        return 10.0 * i

    out = []
    for p in range(-(d // 2), d // 2 + 1):
        pos = key + p * 2.0 / t
        lo = int(np.floor(pos + 1e-9))
        w = pos - lo
        out.append(value(lo) if w < 1e-6 else (1 - w) * value(lo) + w * value(lo + 1))
    return np.array(out)


@pytest.mark.parametrize('t', [0.625, 1.0, 2.0, 2.5, 5.0])
@pytest.mark.parametrize('d', [3, 7, 9])
def test_load_slice_stack_exact_values(tmp_path, t, d):
    write_series(tmp_path, 1, 60)
    stack = load_slice_stack(str(tmp_path), 30, t, d, reader=SliceReader(0))
    assert stack.shape == (d, 4, 5) and stack.dtype == np.float32
    exp = expected_stack(30, t, d, 1, 60)
    np.testing.assert_allclose(stack[:, 0, 0], exp, rtol=0, atol=1e-3)
    assert np.all(stack == stack[:, :1, :1])
    if t in (0.625, 2.5):  # fractional positions: every neighbour interpolated at its own
        # fraction, so the stack is linear in depth (10 * key + 10 * p * 2 / t)
        np.testing.assert_allclose(
            exp, 10 * (30 + np.arange(-(d // 2), d // 2 + 1) * 2 / t), atol=1e-9)


@pytest.mark.parametrize('t', [0.625, 1.0, 2.5, 5.0])
def test_volume_edges_and_gaps_fall_back_towards_the_key_slice(tmp_path, t):
    write_series(tmp_path, 10, 16, skip=(14, ))
    stack = load_slice_stack(str(tmp_path), 11, t, 9, reader=SliceReader(0))
    np.testing.assert_allclose(
        stack[:, 0, 0], expected_stack(11, t, 9, 10, 16, missing=(14, )), atol=1e-3)
    assert stack[0, 0, 0] == 100.0  # beyond the first slice: slice 10


@pytest.mark.parametrize('t', [1.0, 2.5, 5.0])
def test_depth_jitter_moves_the_whole_stack_within_its_range(tmp_path, t):
    write_series(tmp_path / 's', 1, 60)
    shifted = load_slice_stack(str(tmp_path / 's'), 30, t, 7, offset=0.7, reader=SliceReader(0))
    # every slice moved by 0.7 mm = 0.7 / t original slices; the series is 10 HU per slice
    expected = 10 * (30 + (np.arange(-3, 4) * 2.0 + 0.7) / t)
    np.testing.assert_allclose(shifted[:, 0, 0], expected, atol=1e-3)
    init_default_scope('mmdet')
    load = TRANSFORMS.build(dict(type='LoadDeepLesionSlices', num_slices=7, depth_jitter_mm=1.5))
    np.random.seed(0)
    offsets = []
    for _ in range(20):
        img = load(dict(img_path=str(tmp_path / 's' / '030.png'), key_slice=30,
                        slice_interval=t))['img']
        key_mm = (img[0, 0, 3] / 10 - 30) * t  # where the key position landed, in mm
        np.testing.assert_allclose(
            img[0, 0] / 10 - 30, (np.arange(-3, 4) * 2.0 + key_mm) / t,
            atol=1e-3)  # the stack moved as one
        offsets.append(key_mm)
    assert max(map(abs, offsets)) <= 1.5 + 1e-3 and np.std(offsets) > 0.3


def test_missing_key_slice_and_cache(tmp_path):
    write_series(tmp_path, 1, 9)
    with pytest.raises(FileNotFoundError, match='020.png'):
        load_slice_stack(str(tmp_path), 20, 1.0, 3)
    reader = SliceReader(16)
    load_slice_stack(str(tmp_path), 5, 1.0, 3, reader=reader)
    misses = reader.misses
    load_slice_stack(str(tmp_path), 5, 1.0, 3, reader=reader)
    assert reader.misses == misses and reader.hits >= 3


def test_decode_slice_maps_the_whole_uint16_range_to_hu(tmp_path):
    raw = np.array([[0, 1, 32767, 32768, 32769, 65535]], np.uint16)
    cv2.imwrite(str(tmp_path / '001.png'), raw)
    hu = decode_slice(str(tmp_path / '001.png'))
    assert hu.dtype == np.int16
    np.testing.assert_array_equal(hu, raw.astype(np.int32) - 32768)
    cv2.imwrite(str(tmp_path / '002.png'), np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match='002.png.*16-bit'):
        decode_slice(str(tmp_path / '002.png'))


def _disk_entries(cache):
    return sorted(p.relative_to(cache) for p in cache.rglob('*') if p.is_file())


def test_disk_slice_cache_keeps_two_data_roots_apart(tmp_path):
    """The same series name, PNG size and modification time under two data roots: each root
    gets its own pixels from one shared cache."""
    a, b = tmp_path / 'rootA' / '000001_01_01', tmp_path / 'rootB' / '000001_01_01'
    for folder, value in ((a, 100), (b, 200)):
        os.makedirs(folder)
        cv2.imwrite(str(folder / '003.png'), np.full((4, 5), 32768 + value, np.uint16))
        os.utime(folder / '003.png', ns=(1, 10**18))
    assert (a / '003.png').stat().st_size == (b / '003.png').stat().st_size
    cache = str(tmp_path / 'cache')
    assert SliceReader(0, cache).read(str(a / '003.png'))[0, 0] == 100
    assert SliceReader(0, cache).read(str(b / '003.png'))[0, 0] == 200
    assert SliceReader(0, cache).read(str(a / '003.png'))[0, 0] == 100


def test_disk_slice_cache_round_trip_and_invalidation(tmp_path):
    series = tmp_path / 'data' / '000001_01_01'
    write_series(series, 1, 9)
    cache = tmp_path / 'cache'
    first = SliceReader(cache_size=0, cache_dir=str(cache))
    stack = load_slice_stack(str(series), 5, 1.0, 3, reader=first)
    assert first.disk_hits == 0 and first.misses == 3
    entries = _disk_entries(cache)
    assert len({e.parts[0] for e in entries}) == 1 and len(entries) == 3  # no temporaries
    assert entries[0].parts[0].startswith('000001_01_01-')
    assert all(e.suffix == '.npy' for e in entries)
    again = SliceReader(cache_size=0, cache_dir=str(cache))  # a later epoch / another worker
    np.testing.assert_array_equal(load_slice_stack(str(series), 5, 1.0, 3, reader=again), stack)
    assert again.disk_hits == 3
    # a re-written PNG is decoded again, never served stale
    cv2.imwrite(str(series / '005.png'), np.full((4, 5), 32768 + 7, np.uint16))
    os.utime(series / '005.png', ns=(1, 10**18))
    fresh = SliceReader(cache_size=0, cache_dir=str(cache))
    assert fresh.read(str(series / '005.png'))[0, 0] == 7 and fresh.disk_hits == 0
    # a damaged entry is decoded and written again
    entry = next(cache.rglob('003-*.npy'))
    entry.write_bytes(b'\x93NUMPY garbage')
    fixed = SliceReader(cache_size=0, cache_dir=str(cache))
    assert fixed.read(str(series / '003.png'))[0, 0] == 30 and fixed.disk_hits == 0
    assert SliceReader(0, str(cache)).read(str(series / '003.png'))[0, 0] == 30
    # a missing slice is still reported by name
    with pytest.raises(FileNotFoundError, match='020.png'):
        fixed.read(str(series / '020.png'))


@pytest.mark.parametrize('damage', ['empty', 'truncated', 'wrong shape', 'wrong type'])
def test_bad_cache_entries_are_decoded_again_and_rewritten(tmp_path, damage):
    series = tmp_path / 'data' / '000001_01_01'
    write_series(series, 1, 5)
    cache = tmp_path / 'cache'
    png = str(series / '003.png')
    SliceReader(cache_size=0, cache_dir=str(cache)).read(png)
    entry = next(cache.rglob('003-*.npy'))
    good = entry.read_bytes()
    if damage == 'empty':
        entry.write_bytes(b'')
    elif damage == 'truncated':
        entry.write_bytes(good[:len(good) - 7])
    elif damage == 'wrong shape':  # a valid int16 array of another slice size
        np.save(entry, np.zeros((5, 4), np.int16))
    else:
        np.save(entry, np.zeros((4, 5), np.float32))
    reader = SliceReader(cache_size=0, cache_dir=str(cache))
    img = reader.read(png)
    assert img.shape == (4, 5) and img.dtype == np.int16 and img[0, 0] == 30
    assert reader.disk_hits == 0
    assert entry.read_bytes() == good  # rewritten from the PNG
    again = SliceReader(cache_size=0, cache_dir=str(cache))
    assert again.read(png)[0, 0] == 30 and again.disk_hits == 1


def test_neighbours_of_another_size_fall_back_towards_the_key_slice(tmp_path):
    write_series(tmp_path, 1, 9)
    cv2.imwrite(str(tmp_path / '007.png'), np.full((8, 8), 32768 + 70, np.uint16))
    with pytest.warns(UserWarning, match='007.png is 8x8 px'):
        stack = load_slice_stack(str(tmp_path), 5, 1.0, 5, reader=SliceReader(0))
    # slices 1, 3, 5, 7, 9 at 2 mm; 7 has another size: the nearest slice towards the key (6)
    np.testing.assert_allclose(stack[:, 0, 0], [10, 30, 50, 60, 90])


def test_unreadable_neighbour_is_reported_by_name(tmp_path):
    write_series(tmp_path, 1, 9)
    (tmp_path / '004.png').write_bytes(b'not a png')
    with pytest.raises(OSError, match='004.png'):
        load_slice_stack(str(tmp_path), 5, 2.0, 3, reader=SliceReader(0))
    cv2.imwrite(str(tmp_path / '004.png'), np.full((4, 5), 40, np.uint8))
    with pytest.raises(ValueError, match='004.png: expected a 16-bit'):
        load_slice_stack(str(tmp_path), 5, 2.0, 3, reader=SliceReader(0))


def test_disk_slice_cache_that_cannot_be_written_warns_once_and_reads_pngs(tmp_path):
    write_series(tmp_path / 's', 1, 5)
    blocker = tmp_path / 'not-a-dir'
    blocker.write_text('a file where the cache folder should be')
    reader = SliceReader(cache_size=0, cache_dir=str(blocker))
    with pytest.warns(UserWarning, match='slice cache') as record:
        stack = load_slice_stack(str(tmp_path / 's'), 3, 1.0, 3, reader=reader)
    assert len(record) == 1
    np.testing.assert_allclose(stack[:, 0, 0], [10, 30, 50])


def test_slice_cache_option_reaches_every_loading_step(tmp_path):
    cfg = load_config(
        os.path.join(ROOT, 'configs', 'deeplesion_acs_7slice.py'), slice_cache=str(tmp_path))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        steps = [s for s in cfg[key].dataset.pipeline if s.type == 'LoadDeepLesionSlices']
        assert [s.cache_dir for s in steps] == [str(tmp_path)]
    init_default_scope('mmdet')
    step = TRANSFORMS.build(cfg.train_dataloader.dataset.pipeline[0])
    assert step.reader.cache_dir == str(tmp_path)


@pytest.mark.parametrize('channels', [1, 3, 7, 9])
def test_warp_channels_matches_slice_by_slice_warps_and_fills_every_channel(channels):
    yy, xx = np.mgrid[0:64, 0:80].astype(np.float32)
    img = np.stack([np.sin(xx / 7 + c) * np.cos(yy / 5) + c for c in range(channels)], -1)
    m = cv2.getRotationMatrix2D((39.5, 31.5), 13.0, 1.15)
    m[:, 2] += (9.0, -4.0)
    out = warp_channels(img, m, (80, 64), border_value=-5.0)
    assert out.shape == (64, 80, channels) and out.dtype == np.float32
    for c in range(channels):
        ref = cv2.warpAffine(
            img[:, :, c].copy(), m, (80, 64), borderMode=cv2.BORDER_CONSTANT, borderValue=-5.0)
        inside = ref != -5.0
        assert inside.mean() > 0.6 and np.all(out[:, :, c][~inside] == -5.0)
        # every channel sampled at the same points, to within OpenCV's 1/32-pixel positions
        # (away from the border, where the fill value -5 enters the blend)
        core = cv2.erode(
            inside.astype(np.uint8),
            np.ones((5, 5), np.uint8),
            borderType=cv2.BORDER_CONSTANT,
            borderValue=0).astype(bool)
        assert core.mean() > 0.5
        np.testing.assert_allclose(out[:, :, c][core], ref[core], atol=0.05)


def _sample(h=64, w=80, d=7):
    img = np.stack([np.full((h, w), 0.1 * c, np.float32) for c in range(d)], -1)
    img[20:36, 30:50] += 2.0  # a lesion drawn into every slice
    mask = np.zeros((1, h, w), np.uint8)
    mask[0, 20:36, 30:50] = 1
    return dict(
        img=img,
        img_shape=(h, w),
        ori_shape=(h, w),
        gt_bboxes=HorizontalBoxes(np.array([[30, 20, 50, 36]], np.float32)),  # continuous
        gt_bboxes_labels=np.array([0]),
        gt_ignore_flags=np.array([False]),
        gt_masks=BitmapMasks(mask, h, w))


def _check_aligned(res, d=7):
    img, box = res['img'], res['gt_bboxes'].tensor.numpy()[0]
    mask = res['gt_masks'].masks[0].astype(bool)
    assert img.shape[2] == d and mask.shape == img.shape[:2]
    inside = img[mask]
    assert inside.shape[0] > 20
    # the lesion (value >= 2 in every slice) is under its mask, and the mask under its box
    assert np.mean(inside[:, 0] > 1.0) > 0.9
    ys, xs = np.nonzero(mask)
    assert xs.min() >= np.floor(box[0]) and xs.max() + 1 <= np.ceil(box[2])
    assert ys.min() >= np.floor(box[1]) and ys.max() + 1 <= np.ceil(box[3])
    bright = img[..., 0] > 1.0
    assert np.mean(mask[bright]) > 0.9
    # every slice moved the same way: slice c - slice 0 is 0.1 * c wherever both are valid
    diff = img[..., d - 1] - img[..., 0]
    assert np.allclose(np.median(diff[mask]), 0.1 * (d - 1), atol=0.02)


@pytest.mark.parametrize('seed', range(4))
def test_shift_scale_rotate_keeps_image_boxes_and_masks_aligned(seed):
    np.random.seed(seed)
    t = TRANSFORMS.build(
        dict(type='RandomShiftScaleRotate', shift=0.04, scale=0.2, rotate=15, prob=1.0))
    res = t.transform(_sample())
    assert 'affine_matrix' in res
    _check_aligned(res)


def test_mmdet_resize_and_flip_handle_7_channel_float_images():
    init_default_scope('mmdet')
    resize = TRANSFORMS.build(dict(type='Resize', scale=(160, 160), keep_ratio=True))
    flip = TRANSFORMS.build(dict(type='RandomFlip', prob=1.0))
    res = flip(resize(_sample()))
    assert res['img'].shape == (128, 160, 7) and res['img'].dtype == np.float32
    assert res['scale_factor'] == pytest.approx((2.0, 2.0))
    assert res['flip'] and res['flip_direction'] == 'horizontal'
    _check_aligned(res)
    # slice c outside the lesion keeps its value 0.1 c after resizing
    np.testing.assert_allclose(res['img'][2, 2], 0.1 * np.arange(7), atol=1e-6)


def test_hu_window_normalize():
    t = TRANSFORMS.build(dict(type='HUWindowNormalize', window=(-1024, 2050)))
    res = t(dict(img=np.array([[[-2000., -1024., 513., 2050., 4000.]]], np.float32)))
    np.testing.assert_allclose(res['img'][0, 0], [0, 0, 0.5, 1, 1], atol=1e-6)
    ref = TRANSFORMS.build(
        dict(type='HUWindowNormalize', window=(-1024, 2050), out_range=(-50, 205)))
    assert ref(dict(img=np.array([[[2050.]]], np.float32)))['img'][0, 0, 0] == pytest.approx(205)


@pytest.fixture(scope='module')
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp('dl')
    make_synthetic_deeplesion(
        str(root), num_series=6, seed=11, image_size=128, context_mm=8, noisy_fraction=0.3)
    convert_deeplesion(str(root), str(root / 'annotations'))
    return root


def _dataset(root, split, pipeline, **kw):
    init_default_scope('mmdet')
    cfg = Config.fromfile(os.path.join(ROOT, 'configs', 'deeplesion_acs_7slice.py'))
    ds = dict(cfg[f'{split}_dataloader'].dataset) if split != 'test' else dict(
        cfg.test_dataloader.dataset)
    ds.update(data_root=str(root) + '/', pipeline=cfg[pipeline], **kw)
    if split == 'train':
        ds['ann_file'] = 'annotations/deeplesion_train.json'
    return DATASETS.build(ds)


def test_dataset_train_samples(converted):
    import json
    coco = json.loads((converted / 'annotations' / 'deeplesion_train.json').read_text())
    ds = _dataset(converted, 'train', 'train_pipeline')
    clean = [
        i['id'] for i in coco['images']
        if any(not a['noisy'] for a in coco['annotations'] if a['image_id'] == i['id'])
    ]
    assert len(ds) == len(clean)
    for i in range(len(ds)):
        s = ds[i]
        x = s['inputs']
        assert x.dtype == torch.float32 and x.shape[0] == 7 and max(x.shape[1:]) == 512
        assert 0 <= x.min() and x.max() <= 1
        n = len(ds.get_data_info(i)['instances'])
        gt = s['data_samples'].gt_instances
        assert len(gt) <= n and len(gt.masks) == len(gt.bboxes)  # augmentation may push some out
    with_noisy = _dataset(converted, 'train', 'train_pipeline', drop_noisy=False)
    infos = [with_noisy.get_data_info(i) for i in range(len(with_noisy))]
    assert sum(len(d['instances']) for d in infos) == len(coco['annotations'])
    assert sum(a['noisy'] for d in infos for a in d['instances']) > 0


def test_dataset_test_samples_keep_gt_in_original_coordinates(converted):
    ds = _dataset(converted, 'test', 'test_pipeline')
    assert len(ds) > 0
    s = ds[0]
    info = ds.get_data_info(0)
    meta = s['data_samples'].metainfo
    assert s['inputs'].shape == (7, 512, 512) and meta['ori_shape'] == (128, 128)
    assert meta['scale_factor'] == pytest.approx((4.0, 4.0))
    np.testing.assert_allclose(
        s['data_samples'].gt_instances.bboxes.tensor.numpy(),
        [a['bbox'] for a in info['instances']],
        rtol=1e-5)
    assert meta['instances'][0]['bbox'] == info['instances'][0]['bbox']
    assert meta['slice_interval'] == info['slice_interval']


def test_dataset_type_selection_and_empty_images(converted):
    all_ds = _dataset(converted, 'test', 'test_pipeline')
    infos = [all_ds.get_data_info(i) for i in range(len(all_ds))]
    types = [a['lesion_type'] for d in infos for a in d['instances']]
    assert len(set(types)) >= 2  # a selection can only be tested where there is one to make
    wanted = types[0]
    ds = _dataset(converted, 'test', 'test_pipeline', keep_empty=True, lesion_types=[wanted])
    kept = [a['lesion_type'] for i in range(len(ds)) for a in ds.get_data_info(i)['instances']]
    assert kept == [t for t in types if t == wanted]  # every lesion of the type, none else
    # keep_empty keeps the key slices left without a lesion of that type; without it they go
    assert len(ds) == len(all_ds)
    only = _dataset(converted, 'test', 'test_pipeline', lesion_types=[wanted])
    assert len(only) == sum(any(a['lesion_type'] == wanted for a in d['instances']) for d in infos)
    assert len(only) < len(ds)
    with pytest.raises(ValueError, match='no key slice to use'):
        _dataset(converted, 'test', 'test_pipeline', lesion_types=[99])


def test_spacing_resize_normalises_pixel_spacing_with_a_cap():
    init_default_scope('mmdet')
    t = TRANSFORMS.build(dict(type='SpacingResize', target_spacing=0.8, max_size=512))
    res = t(dict(_sample(h=64, w=80), spacing=[0.4, 0.4]))  # 0.4 mm/px -> 0.8: half the size
    assert res['img'].shape == (32, 40, 7) and res['scale_factor'] == pytest.approx((0.5, 0.5))
    np.testing.assert_allclose(res['gt_bboxes'].tensor.numpy(), [[15, 10, 25, 18]])
    assert res['gt_masks'].masks.shape == (1, 32, 40)
    big = TRANSFORMS.build(dict(type='SpacingResize', target_spacing=0.8, max_size=100))
    res = big(dict(_sample(h=64, w=80), spacing=[1.6, 1.6]))  # x2 wanted, capped at 100 px
    assert res['img'].shape == (80, 100, 7)
    same = t(dict(_sample(h=64, w=80)))  # no spacing: size kept
    assert same['img'].shape == (64, 80, 7)


@pytest.mark.parametrize('t', [0.625, 2.0, 2.5, 5.0])
def test_keep_thick_slices_takes_neighbours_of_thick_series_as_they_are(tmp_path, t):
    """AlignShift's input: a series thicker than 2 mm gives its own neighbouring slices (no
    interpolation); a thinner one is resampled at 2 mm exactly as without the option."""
    from acsdet.datasets.slices import volume_stack
    write_series(tmp_path, 1, 60)
    kept = load_slice_stack(str(tmp_path), 30, t, 7, reader=SliceReader(0), keep_thick_slices=True)
    if t > 2.0:
        np.testing.assert_array_equal(kept[:, 0, 0], 10.0 * np.arange(27, 34))
    else:
        np.testing.assert_array_equal(
            kept, load_slice_stack(str(tmp_path), 30, t, 7, reader=SliceReader(0)))
    # the same rule on an in-memory volume (patient-CT inference)
    hu = np.repeat((10.0 * np.arange(1, 61, dtype=np.float32))[:, None, None], 2, 1)
    vol = volume_stack(hu, np.arange(60) * t, 29, 7, 2.0, keep_thick_slices=True)
    np.testing.assert_allclose(vol[:, 0, 0], kept[:, 0, 0], atol=1e-3)
