"""Bad input is refused or reported clearly, naming the file, row or field; nothing good is lost.

Converter (sizes, boxes, neighbours, duplicates, BOM, empty splits, windows, unwritable output,
outputs replaced as one set), tools/froc_eval.py (malformed detections, arguments, untrusted
pickles), tools/test.py and tools/train.py (bad checkpoints, --resume), outputs through symlinks.
"""
import csv
import json
import os
import os.path as osp
import pickle
import shutil

import cv2
import numpy as np
import pytest
import torch

from acsdet.datasets import DeepLesionDataset
from acsdet.deeplesion.boxes import inclusive_to_coco
from acsdet.deeplesion.coco import read_coco_annotations
from acsdet.deeplesion.info import group_by_key_slice, read_dl_info
from acsdet.preparation import deeplesion_coco
from acsdet.preparation.deeplesion_coco import REPORT_NAME, convert_deeplesion
from acsdet.testing.synthetic import make_synthetic_deeplesion
from acsdet.utils import files as acsdet_files
from acsdet.utils.run_outputs import LEDGER, OutputRefused

from ..helpers import ROOT

CONFIG = osp.join(ROOT, 'configs', 'demo', 'deeplesion_acs_7slice_demo.py')
OUTPUTS = ['deeplesion_train.json', 'deeplesion_val.json', 'deeplesion_test.json', REPORT_NAME]


@pytest.fixture(scope='module')
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp('bad')
    make_synthetic_deeplesion(
        str(root), num_series=8, seed=5, image_size=96, context_mm=4, noisy_fraction=0.0)
    return root


def _copy(synth, tmp_path):
    data = tmp_path / 'data'
    shutil.copytree(synth, data, ignore=shutil.ignore_patterns('annotations'))
    return data


def _edit_csv(data, edit, bom=False):
    with open(data / 'DL_info.csv', newline='', encoding='utf-8-sig') as f:
        header, *rows = list(csv.reader(f))
    col = {c: i for i, c in enumerate(header)}
    rows = edit(rows, col) or rows
    with open(data / 'DL_info.csv', 'w', newline='', encoding='utf-8-sig' if bom else 'utf-8') as f:
        csv.writer(f).writerows([header] + rows)


def _singles(data):
    """Records of key slices with a single lesion, by CSV line."""
    records, _ = read_dl_info(str(data / 'DL_info.csv'))
    return [g[0] for g in group_by_key_slice(records).values() if len(g) == 1]


def test_converter_reports_sizes_boxes_neighbours_and_duplicates(synth, tmp_path):
    data = _copy(synth, tmp_path)
    a, b, c, d = _singles(data)[:4]
    # d's series gets a neighbour of another size than its key slice
    neighbour = data / 'Images_png' / d.series_dir / f'{d.key_slice + 1:03d}.png'
    cv2.imwrite(str(neighbour), np.full((48, 48), 32768, np.uint16))

    def edit(rows, col):
        rows[a.line - 2][col['Image_size']] = '512, 512'  # the PNGs are 96 x 96
        rows[b.line - 2][col['Bounding_boxes']] = '200, 200, 220, 230'  # outside the image
        x1, y1 = (float(v) for v in rows[c.line - 2][col['Bounding_boxes']].split(',')[:2])
        rows[c.line - 2][col['Bounding_boxes']] = f'{x1}, {y1}, 99.5, 98'  # past the border
        return rows + [list(rows[0])]  # a duplicated row

    _edit_csv(data, edit, bom=True)  # saved with a byte-order mark, as spreadsheets do
    out = tmp_path / 'coco'
    s = convert_deeplesion(str(data), str(out))
    skipped, warned = dict(s.skipped), {}
    for line, w in s.warnings:
        warned.setdefault(line, []).append(w)
    n_rows = len(read_dl_info(str(data / 'DL_info.csv'))[0]) + 1  # + the duplicate
    assert skipped[a.line] == f'Image_size: 512x512 in DL_info.csv, but ' \
        f'{data / "Images_png" / a.key_slice_relpath} is 96x96'
    assert 'lies outside the 96x96 image' in skipped[b.line]
    assert 'duplicate of line 2' in skipped[n_rows + 1]
    assert any('reaches past the 96x96 image' in w for w in warned[c.line])
    assert any(f'{neighbour.name} (48x48)' in w for w in warned[d.line])
    report = json.loads((out / REPORT_NAME).read_text())
    assert {x['line'] for x in report['skipped']} == set(skipped)
    assert {x['line'] for x in report['warnings']} == set(warned)
    # skipped lesions are not in the output; the warned box is kept exactly as in the CSV
    anns = {
        x['csv_line']: x
        for split in ('train', 'val', 'test')
        for x in json.loads((out / f'deeplesion_{split}.json').read_text())['annotations']
    }
    assert a.line not in anns and b.line not in anns and n_rows + 1 not in anns
    assert anns[c.line]['bbox'] == inclusive_to_coco([c.bbox[0], c.bbox[1], 98.5, 97])
    assert s.total_lesions == n_rows - 3
    # the loader replaces the odd-sized neighbour instead of crashing
    split = {1: 'train', 2: 'val', 3: 'test'}[d.split]
    ds = DeepLesionDataset(
        ann_file=str(out / f'deeplesion_{split}.json'),
        data_root=str(data) + '/',
        pipeline=[dict(type='LoadDeepLesionSlices', num_slices=7, cache_size=0)],
        test_mode=True)
    i = next(
        i for i in range(len(ds)) if ds.get_data_info(i)['key_slice'] == d.key_slice
        and d.series_dir in ds.get_data_info(i)['img_path'])
    with pytest.warns(UserWarning, match=neighbour.name):
        assert ds[i]['img'].shape == (96, 96, 7)


def test_empty_split_is_reported_and_refused_at_training(synth, tmp_path, capsys):
    data = _copy(synth, tmp_path)

    def edit(rows, col):
        for r in rows:
            if r[col['Train_Val_Test']] == '3':
                r[col['Train_Val_Test']] = '2'

    _edit_csv(data, edit)
    out = tmp_path / 'coco'
    s = convert_deeplesion(str(data), str(out))
    assert s.images['test'] == 0 and 'test         0        0  (0)  EMPTY' in s.report()
    assert json.loads((out / REPORT_NAME).read_text())['empty_splits'] == ['test']
    with pytest.raises(ValueError, match=r'deeplesion_test\.json: no key slice to use'):
        DeepLesionDataset(
            ann_file=str(out / 'deeplesion_test.json'), data_root=str(data) + '/', pipeline=[])


@pytest.mark.parametrize('window', ['foo', '5,1', 'nan,3', '1,2,3', '-100'])
def test_window_is_validated(synth, tmp_path, window, capsys):
    from data_converters import deeplesion_to_coco
    with pytest.raises(SystemExit) as e:
        deeplesion_to_coco.main(
            ['--data-root',
             str(synth), '--out-dir',
             str(tmp_path / 'o'), '--window', window])
    assert e.value.code == 2 and '--window' in capsys.readouterr().err
    with pytest.raises(ValueError, match='window'):
        convert_deeplesion(str(synth), str(tmp_path / 'o'), window=window)
    assert not (tmp_path / 'o').exists()


def test_unwritable_out_dir_fails_before_any_grabcut(synth, tmp_path, monkeypatch, capsys):
    from data_converters import deeplesion_to_coco

    def no_work(task):
        raise AssertionError('GrabCut ran although the output cannot be written')

    monkeypatch.setattr(deeplesion_coco, 'process_key_slice', no_work)
    blocker = tmp_path / 'file'
    blocker.write_text('a file where the output folder should be')
    with pytest.raises(OSError, match=r'cannot write to the output folder .*file/out'):
        convert_deeplesion(str(synth), str(blocker / 'out'))
    with pytest.raises(SystemExit) as e:
        deeplesion_to_coco.main(['--data-root', str(synth), '--out-dir', str(blocker / 'out')])
    assert e.value.code == 2 and 'cannot write' in capsys.readouterr().err


def _outputs(out):
    return {n: (out / n).read_bytes() for n in OUTPUTS}


def test_outputs_are_replaced_as_one_set(synth, tmp_path, monkeypatch):
    data = _copy(synth, tmp_path)
    out = tmp_path / 'coco'
    convert_deeplesion(str(data), str(out))
    old = _outputs(out)
    _edit_csv(data, lambda rows, col: rows[:-1])  # the new set differs in one split
    ref = tmp_path / 'ref'
    convert_deeplesion(str(data), str(ref))
    new = _outputs(ref)

    # killed while writing the temporaries (here the third file): the old set, no temporary
    real_writer = deeplesion_coco._json_writer
    calls = []

    def dying_writer(obj):

        def write(f):
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt
            real_writer(obj)(f)

        return write

    monkeypatch.setattr(deeplesion_coco, '_json_writer', dying_writer)
    with pytest.raises(KeyboardInterrupt):
        convert_deeplesion(str(data), str(out))
    monkeypatch.undo()
    assert _outputs(out) == old and sorted(os.listdir(out)) == sorted(OUTPUTS + [LEDGER])

    # a hard kill leaves temporaries behind: the next run removes them
    stray = out / ('deeplesion_val.json.' + 'ab' * 16 + '.tmp')
    stray.write_text('{"partial": ')

    # killed in the middle of the renames (after the first file): rolled forward to the new set
    real_replace, renames = os.replace, []

    def dying_replace(src, dst):
        if str(src).endswith('.tmp') and osp.basename(str(dst)) in OUTPUTS:
            renames.append(dst)
            if len(renames) == 2:
                raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(acsdet_files.os, 'replace', dying_replace)
    with pytest.raises(KeyboardInterrupt):
        convert_deeplesion(str(data), str(out))
    monkeypatch.undo()
    assert not stray.exists()
    # on disk, for now: one file renamed, three complete temporaries and the journal
    assert (out / acsdet_files.WRITE_SET_JOURNAL).is_file()
    assert len(list(out.glob('*.tmp'))) == len(OUTPUTS) - 1
    # the next reader (a training run's dataset) completes the interrupted commit first
    DeepLesionDataset(
        ann_file=str(out / 'deeplesion_test.json'), data_root='', pipeline=[], test_mode=True)
    done = _outputs(out)
    for n in OUTPUTS[:3]:
        assert done[n] == new[n], n
    assert json.loads(done[REPORT_NAME])['lesions'] == json.loads(new[REPORT_NAME])['lesions']
    assert sorted(os.listdir(out)) == sorted(OUTPUTS + [LEDGER])  # no journal, no temporaries


# ---- tools/froc_eval.py ----------------------------------------------------------------------


def _gt(tmp_path):
    coco = dict(
        images=[dict(id=1, file_name='000001_01_01/010.png')],
        annotations=[dict(id=1, image_id=1, bbox=[10, 10, 20, 20])],
        categories=[dict(id=1, name='lesion')])
    (tmp_path / 'gt.json').write_text(json.dumps(coco))
    return str(tmp_path / 'gt.json')


@pytest.mark.parametrize(
    'dets, message',
    [
        ([[10, 10, 29, 29]] * 5, r'\(n, 5\).*got shape \(5, 4\)'),  # five 4-number boxes
        ([[10, 10, 29, 29, 0.9, 1]], r'got shape \(1, 6\)'),
        ([[10, 10, 29, 29, float('nan')]], 'non-finite'),
        ([[10, 10, 29, float('inf'), 0.9]], 'non-finite'),
        ([[29, 10, 10, 29, 0.9]], 'x2 < x1'),
        ([['a', 10, 29, 29, 0.9]], 'must be lists of 5 numbers'),
    ])
def test_froc_eval_refuses_malformed_detections(tmp_path, capsys, dets, message):
    from tools import froc_eval
    path = tmp_path / 'dets.json'
    path.write_text(json.dumps({'000001_01_01/010.png': dets}))
    with pytest.raises(SystemExit) as e:
        froc_eval.main([str(path), _gt(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert str(path) in err and '000001_01_01/010.png' in err
    import re
    assert re.search(message, err), err


@pytest.mark.parametrize('args, message', [(['--iou', '0'], r'--iou must be in \(0, 1\]'),
                                           (['--iou', '1.5'], r'--iou must be in \(0, 1\]'),
                                           (['--fps', '1', '-2'], '--fps must be positive'),
                                           (['--fps', '0'], '--fps must be positive')])
def test_froc_eval_validates_arguments(tmp_path, capsys, args, message):
    from tools import froc_eval
    path = tmp_path / 'dets.json'
    path.write_text(json.dumps({'000001_01_01/010.png': [[10, 10, 29, 29, 0.9]]}))
    with pytest.raises(SystemExit) as e:
        froc_eval.main([str(path), _gt(tmp_path)] + args)
    assert e.value.code == 2 and message.replace('\\', '') in capsys.readouterr().err.replace(
        '\\', '')


class _RunsCode:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def test_froc_eval_does_not_run_code_from_a_pickle(tmp_path, capsys):
    from tools import froc_eval
    marker = tmp_path / 'ran'
    (tmp_path / 'evil.pkl').write_bytes(pickle.dumps([dict(img_id=1, x=_RunsCode(marker))]))
    with pytest.raises(SystemExit) as e:
        froc_eval.main([str(tmp_path / 'evil.pkl'), _gt(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and 'evil.pkl: refusing to load' in err and 'system' in err
    assert not marker.exists()
    # an ordinary results pickle (tensors, numpy, plain containers) still loads
    ok = [
        dict(
            img_id=1,
            img_path='/x/000001_01_01/010.png',
            scale_factor=np.float64(1.0),
            pred_instances=dict(
                bboxes=torch.tensor([[10., 10., 30., 30.]]),
                scores=torch.tensor([0.9]),
                labels=torch.zeros(1, dtype=torch.long),
                masks=[dict(size=[64, 64], counts=b'PQ01')]))
    ]
    (tmp_path / 'ok.pkl').write_bytes(pickle.dumps(ok, protocol=2))  # as mmengine dumps
    assert froc_eval.main([str(tmp_path / 'ok.pkl'), _gt(tmp_path)])['avg'] == 1.0


def test_froc_eval_refuses_an_image_given_twice(tmp_path, capsys):
    """json.load keeps the last of two equal keys: 75 % would be printed for 100 %."""
    from tools import froc_eval
    path = tmp_path / 'dets.json'
    path.write_text('{"000001_01_01/010.png": [[10, 10, 29, 29, 0.9]], '
                    '"000001_01_01/010.png": [[50, 50, 60, 60, 0.8]]}')
    with pytest.raises(SystemExit) as e:
        froc_eval.main([str(path), _gt(tmp_path)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"{path}: key '000001_01_01/010.png' appears twice" in err


def test_froc_eval_id_only_detections_need_the_gt_fingerprint(tmp_path, capsys):
    from acsdet.deeplesion.coco import coco_fingerprint
    from tools import froc_eval
    gt = _gt(tmp_path)
    path = tmp_path / 'ids.json'
    path.write_text(json.dumps({'1': [[10, 10, 29, 29, 0.9]]}))
    with pytest.raises(SystemExit) as e:
        froc_eval.main([str(path), gt])
    err = capsys.readouterr().err
    fp = coco_fingerprint(json.loads(open(gt).read()))
    assert e.value.code == 2 and 'keyed by COCO id only' in err and fp in err
    path.write_text(json.dumps({'gt_fingerprint': fp, '1': [[10, 10, 29, 29, 0.9]]}))
    assert froc_eval.main([str(path), gt])['avg'] == 1.0
    # the same ids after a re-conversion that moved them: another fingerprint, refused
    coco = json.loads(open(gt).read())
    coco['images'] = [
        dict(id=1, file_name='000001_01_01/011.png'),
        dict(id=2, file_name='000001_01_01/010.png')
    ]
    coco['annotations'][0]['image_id'] = 2
    (tmp_path / 'gt.json').write_text(json.dumps(coco))
    with pytest.raises(SystemExit):
        froc_eval.main([str(path), gt])
    assert 'keyed by COCO id only' in capsys.readouterr().err


def test_froc_eval_completes_an_interrupted_conversion_before_reading_it(
        synth, tmp_path, monkeypatch):
    """Killed in the converter's renames: the first froc_eval scores the new ground truth."""
    from tools import froc_eval
    data = _copy(synth, tmp_path)
    out = tmp_path / 'coco'
    convert_deeplesion(str(data), str(out))
    old = json.loads((out / 'deeplesion_test.json').read_text())
    # the new conversion loses the test split's first lesion
    first = min(r.line for r in read_dl_info(str(data / 'DL_info.csv'))[0] if r.split == 3)
    _edit_csv(data, lambda rows, col: [r for i, r in enumerate(rows) if i + 2 != first])
    real_replace = os.replace

    def dying_replace(src, dst):  # the test split is renamed last: die just before it
        if str(src).endswith('.tmp') and osp.basename(str(dst)) == 'deeplesion_test.json':
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(acsdet_files.os, 'replace', dying_replace)
    with pytest.raises(KeyboardInterrupt):
        convert_deeplesion(str(data), str(out), splits=('test', ))
    monkeypatch.undo()
    assert json.loads((out / 'deeplesion_test.json').read_text()) == old  # not renamed yet
    dets = {i['file_name']: [[0, 0, 5, 5, 0.1]] for i in old['images']}
    (tmp_path / 'dets.json').write_text(json.dumps(dets))
    froc_eval.main([
        str(tmp_path / 'dets.json'),
        str(out / 'deeplesion_test.json'), '--out-dir',
        str(tmp_path / 'scored')
    ])
    new = json.loads((out / 'deeplesion_test.json').read_text())
    assert len(new['annotations']) == len(old['annotations']) - 1
    scored = json.loads((tmp_path / 'scored' / 'froc.json').read_text())
    assert scored['num_lesions'] == len(new['annotations'])


class _Utf8Bytes:

    def __reduce__(self):  # bytes through _codecs.encode, but not pickle's own latin-1
        import codecs
        return codecs.encode, ('abc', 'utf-8')


def test_results_pickle_refusals_name_the_file(tmp_path):
    from acsdet.utils.safe_pickle import load_results_pickle
    path = tmp_path / 'odd.pkl'
    path.write_bytes(pickle.dumps([_Utf8Bytes()], protocol=2))
    with pytest.raises(pickle.UnpicklingError, match=rf'^{path}: refused: _codecs.encode'):
        load_results_pickle(str(path))
    # a tensor whose storage bytes are not a weights-only torch file
    path.write_bytes(b'\x80\x02ctorch.storage\n_load_from_bytes\nC\x04junkq\x00\x85R.')
    with pytest.raises(pickle.UnpicklingError, match=rf'^{path}: '):
        load_results_pickle(str(path))


def test_acsdet_0_1_coco_files_are_refused(tmp_path):
    old = dict(
        info=dict(description='DeepLesion test split, converted by acsdet'),
        images=[dict(id=1, file_name='000001_01_01/010.png')],
        annotations=[dict(id=1, image_id=1, bbox=[10, 10, 19, 19])],
        categories=[])
    (tmp_path / 'old.json').write_text(json.dumps(old))
    with pytest.raises(ValueError, match='one pixel too small.*deeplesion_to_coco'):
        read_coco_annotations(str(tmp_path / 'old.json'))
    bad = dict(old, info={}, annotations=[dict(id=4, image_id=1, bbox=[10, 10, 0, 5])])
    (tmp_path / 'bad.json').write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r'bad\.json: annotation 4 \(image 1\): bbox'):
        read_coco_annotations(str(tmp_path / 'bad.json'))


# ---- checkpoints and --resume ----------------------------------------------------------------


@pytest.fixture(scope='module')
def converted(synth):
    convert_deeplesion(str(synth), str(synth / 'annotations'))
    return synth


@pytest.mark.parametrize('kind', ['empty', 'foreign', 'missing', 'other-mode'])
def test_test_tool_refuses_bad_checkpoints(converted, tmp_path, kind):
    from mmengine.config import Config

    from acsdet.engine.architecture import ARCH_KEY, model_architecture
    from mmdet.registry import MODELS
    from tools import test as test_tool
    ckpt = tmp_path / f'{kind}.pth'
    if kind == 'empty':
        ckpt.write_bytes(b'')
    elif kind == 'foreign':  # e.g. a torchvision classifier's state dict
        torch.save({'features.conv0.weight': torch.zeros(8, 3, 7, 7)}, ckpt)
    elif kind == 'other-mode':  # a 2.5D model: the same keys and shapes as the ACS config's
        model_cfg = Config.fromfile(CONFIG).model
        model_cfg.backbone.conv_mode = '2.5d'
        torch.save(
            dict(
                state_dict=MODELS.build(model_cfg).state_dict(),
                meta={ARCH_KEY: model_architecture(model_cfg)}), ckpt)
    with pytest.raises(SystemExit) as e:
        test_tool.main([
            CONFIG,
            str(ckpt), '--work-dir',
            str(tmp_path / 'work'), '--data-root',
            str(converted), '--cfg-options', 'test_dataloader.num_workers=0',
            'test_dataloader.persistent_workers=False'
        ])
    msg = str(e.value.code)
    assert f'checkpoint {ckpt}' in msg
    assert {
        'empty': 'empty file',
        'foreign': 'does not fit the model',
        'missing': 'no such file',
        'other-mode': "conv_mode='2.5d'"
    }[kind] in msg
    assert len(msg) < 600 and '\n' not in msg  # one line, not a key list
    assert not (tmp_path / 'work' / 'froc_table.txt').exists()


def test_resume_without_a_checkpoint_says_so(tmp_path, capsys):
    from tools import train as train_tool
    with pytest.raises(SystemExit, match=r'--resume .*nothere\.pth: no such checkpoint'):
        train_tool.build_cfg(
            train_tool.parse_args([CONFIG, '--resume',
                                   str(tmp_path / 'nothere.pth')]))
    cfg = train_tool.build_cfg(
        train_tool.parse_args([CONFIG, '--resume', '--work-dir',
                               str(tmp_path / 'w')]))
    assert 'no checkpoint in' in capsys.readouterr().out and cfg.resume is False
    (tmp_path / 'w').mkdir()
    torch.save({}, tmp_path / 'w' / 'epoch_3.pth')
    (tmp_path / 'w' / 'last_checkpoint').write_text(str(tmp_path / 'w' / 'epoch_3.pth'))
    cfg = train_tool.build_cfg(
        train_tool.parse_args([CONFIG, '--resume', '--work-dir',
                               str(tmp_path / 'w')]))
    assert cfg.resume is True and cfg.load_from.endswith('epoch_3.pth')


# ---- outputs through symlinks ----------------------------------------------------------------


def test_froc_curve_and_show_dir_replace_symlinks(tmp_path):
    from mmengine.structures import InstanceData

    from acsdet.engine.hooks import DeepLesionVisualizationHook
    from acsdet.evaluation import compute_froc, plot_froc
    from mmdet.structures import DetDataSample
    target = tmp_path / 'precious.txt'
    target.write_text('keep me')
    link = tmp_path / 'froc_curve.png'
    link.symlink_to(target)
    res = compute_froc([np.array([[0, 0, 9, 9, 0.9]])], [np.array([[0, 0, 9, 9]])])
    with pytest.raises(OutputRefused, match='acsdet did not write it'):
        plot_froc(res, str(link))  # a link acsdet did not make: neither it nor its target
    assert link.is_symlink() and target.read_text() == 'keep me'
    plot_froc(res, str(tmp_path / 'curve.png'))
    plot_froc(res, str(tmp_path / 'curve.png'))  # its own output: replaced
    assert (tmp_path / 'curve.png').read_bytes()[:4] == b'\x89PNG'

    series = tmp_path / 'Images_png' / '000001_01_01'
    series.mkdir(parents=True)
    cv2.imwrite(str(series / '010.png'), np.full((32, 32), 32768, np.uint16))
    show = tmp_path / 'show'
    show.mkdir()
    (show / '000001_01_01_010.png').symlink_to(target)
    sample = DetDataSample(metainfo=dict(img_path=str(series / '010.png'), instances=[]))
    sample.pred_instances = InstanceData(
        bboxes=torch.tensor([[2., 2., 10., 10.]]), scores=torch.tensor([0.9]))
    DeepLesionVisualizationHook(str(show)).after_test_iter(None, 0, outputs=[sample])
    out = show / '000001_01_01_010.png'
    assert not out.is_symlink() and cv2.imread(str(out)).shape == (32, 32, 3)
    assert target.read_text() == 'keep me'
