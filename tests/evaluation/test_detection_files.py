"""evaluation/detection_files: saved detections and GT matched by DeepLesion key, and scored."""
import json

import numpy as np
import pytest

from acsdet.evaluation.detection_files import (InputError, load_detections, load_gt, match,
                                               score_matched)


def test_json_detections_match_gt_by_key_and_score(tmp_path):
    gt = {'000001_01_01/010.png': [[10, 10, 29, 29]], '000002_01_01/005.png': []}
    dets = {
        'Images_png/000001_01_01/010.png': [[10, 10, 29, 29, 0.9], [60, 60, 70, 70, 0.8]],
        '000003_01_01/001.png': [[0, 0, 5, 5, 0.5]]
    }
    (tmp_path / 'gt.json').write_text(json.dumps(gt))
    (tmp_path / 'dets.json').write_text(json.dumps(dets))
    entries, samples, fingerprint = load_detections(str(tmp_path / 'dets.json'))
    assert samples is None and fingerprint is None
    assert [e['key'] for e in entries] == ['000001_01_01/010.png', '000003_01_01/001.png']
    images, _ = load_gt(str(tmp_path / 'gt.json'))
    matched, unmatched = match(entries, images, None, 'dets.json', 'gt.json')
    assert list(matched) == [0] and unmatched == ['000003_01_01/001.png']
    np.testing.assert_allclose(matched[0][:, 4], [0.9, 0.8])
    metrics, text, missing, without_gt = score_matched(matched, images, [0.5, 1, 2], 0.5)
    assert missing == 0 and without_gt == 0 and '(1 images, 1 lesions)' in text
    assert metrics['sens@0.5'] == metrics['avg'] == 1.0  # the hit outscores the false positive
    (tmp_path / 'off.json').write_text(json.dumps({'000001_01_01/010.PNG': [[1, 1, 5, 5, 0.5]]}))
    off, _, _ = load_detections(str(tmp_path / 'off.json'))
    with pytest.raises(
            InputError,
            match=r"off\.json: none of its 1 images is an image of gt\.json "
            r"\(e\.g\. '000001_01_01/010\.PNG'"):  # issue 34, item 14
        match(off, images, None, str(tmp_path / 'off.json'), 'gt.json')
    with pytest.raises(InputError, match='no image with a GT lesion'):
        score_matched({}, [dict(instances=[], slice_interval=None)], [1], 0.5)
