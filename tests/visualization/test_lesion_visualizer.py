"""One visualiser, one palette: the test-time key slices and the inference overlays draw
predictions, ground truth and RECIST in the same colours, through MMDetection's visualiser."""
import types

import cv2
import numpy as np
import torch
from mmengine.structures import InstanceData

from acsdet.visualization import GT_COLOR, PRED_COLOR, RECIST_COLOR, LesionVisualizer
from mmdet.registry import VISUALIZERS
from mmdet.structures import DetDataSample
from mmdet.visualization import DetLocalVisualizer

BGR = {
    k: tuple(v[::-1])
    for k, v in dict(pred=PRED_COLOR, gt=GT_COLOR, recist=RECIST_COLOR).items()
}


def _px(img, x, y):
    return tuple(int(c) for c in img[y, x])


def test_key_slice_and_finding_share_the_palette():
    vis = LesionVisualizer()
    assert isinstance(vis, DetLocalVisualizer)
    hu = np.full((48, 48), 50.0)  # soft tissue: mid grey in the soft-tissue window
    mask = np.zeros((48, 48), bool)
    mask[14:20, 14:20] = True
    test_img = vis.key_slice(
        hu,
        np.array([[10., 10., 30., 30.]]),
        np.array([0.9]),
        mask[None],
        gt_recists=[[4, 40, 20, 40, 12, 36, 12, 44]],
        gt_boxes=[[2., 2., 40., 46.]])
    finding = types.SimpleNamespace(
        id=1,
        score=0.9,
        key_box_px=[10., 10., 30., 30.],
        recist_long_axis_px=[[4, 40], [20, 40]],
        recist_short_axis_px=[[12, 36], [12, 44]])
    report_img = vis.finding(hu, finding, mask)
    for img in (test_img, report_img):
        assert _px(img, 10, 22) == BGR['pred'] and _px(img, 29, 22) == BGR['pred']  # box edges
        assert _px(img, 8, 40) == BGR['recist'] and _px(img, 12, 43) == BGR['recist']
        grey = _px(img, 5, 20)
        tinted = _px(img, 16, 16)  # the mask: 30 % prediction colour over the slice
        assert tinted[2] > grey[2] + 30 and tinted[0] < grey[0] - 30
    assert _px(test_img, 2, 20) == BGR['gt'] and _px(test_img, 39, 20) == BGR['gt']
    assert _px(report_img, 2, 20) != BGR['gt']  # no ground truth in inference
    # a prediction under the score threshold is left out of the picture
    low = vis.key_slice(hu, np.array([[10., 10., 30., 30.]]), np.array([0.1]), score_thr=0.3)
    assert _px(low, 10, 22) == _px(low, 5, 22)


def test_registered_as_the_configs_visualizer_and_draws_a_data_sample(tmp_path):
    from mmengine.config import Config
    cfg = Config.fromfile('configs/_base_/default_runtime.py')
    assert cfg.visualizer.type == 'LesionVisualizer'
    vis = VISUALIZERS.build(dict(type='LesionVisualizer', name='vis_test', window=(-1000, 1000)))
    series = tmp_path / '000001_01_01'
    series.mkdir()
    cv2.imwrite(str(series / '010.png'), np.full((40, 40), 32768 + 100, np.uint16))
    sample = DetDataSample(
        metainfo=dict(
            img_path=str(series / '010.png'),
            instances=[dict(bbox=[5., 5., 20., 20.], ignore_flag=0, recist=None)]))
    sample.pred_instances = InstanceData(
        bboxes=torch.tensor([[8., 8., 30., 30.]]), scores=torch.tensor([0.8]))
    out = tmp_path / 'drawn.png'
    vis.add_datasample('k', None, sample, out_file=str(out))
    img = cv2.imread(str(out))
    assert _px(img, 5, 12) == BGR['gt'] and _px(img, 8, 20) == BGR['pred']
    assert _px(img, 35, 2) == (140, 140, 140)  # 100 HU in the (-1000, 1000) window
    np.testing.assert_array_equal(vis.get_image(), img[..., ::-1])
