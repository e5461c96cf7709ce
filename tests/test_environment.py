"""The installed stack acsdet builds on, as the set-up installs it: mmcv's compiled ops and a
stock MMDetection Mask R-CNN that trains and infers on this CPU (a check of the installation,
not of acsdet's code: a failure here means the environment, not a change)."""
import os.path as osp

import torch
from mmcv.ops import RoIAlign, nms
from mmengine.config import Config

import mmdet
from acsdet.testing import det_batch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules


def test_mmcv_nms_compiled_op():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7])
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]  # the second box overlaps the first with IoU 0.68
    assert torch.allclose(dets[:, 4], torch.tensor([0.9, 0.7]))


def test_mmcv_roi_align_compiled_op():
    # a linear ramp feature: bilinear RoIAlign samples it exactly
    feat = torch.arange(16, dtype=torch.float32).view(1, 1, 1, 16).expand(1, 1, 16, 16).contiguous()
    rois = torch.tensor([[0, 4.0, 4.0, 8.0, 8.0]])
    out = RoIAlign(output_size=2, spatial_scale=1.0, sampling_ratio=1, aligned=True)(feat, rois)
    # bin centres at x = 5 and 7 (pixel-centre convention: minus 0.5)
    assert torch.allclose(out[0, 0], torch.tensor([[4.5, 6.5], [4.5, 6.5]]))


def _stock_mask_rcnn_cfg():
    cfg = Config.fromfile(
        osp.join(
            osp.dirname(mmdet.__file__), '.mim', 'configs', '_base_', 'models',
            'mask-rcnn_r50_fpn.py'))
    m = cfg.model
    m.backbone.update(depth=18, init_cfg=None, frozen_stages=-1, norm_eval=False)
    m.neck.in_channels = [64, 128, 256, 512]
    m.roi_head.bbox_head.num_classes = 2
    m.roi_head.mask_head.num_classes = 2
    return m


def _batch(size=96):
    img = torch.randint(0, 255, (3, size, size), dtype=torch.uint8)
    img[:, 20:60, 30:70] = 255  # one bright object
    return det_batch([img], (30, 20, 70, 60), label=1)


def test_stock_mask_rcnn_trains_and_infers_on_cpu():
    register_all_modules()
    model = MODELS.build(_stock_mask_rcnn_cfg())
    model.init_weights()
    optim = torch.optim.SGD(model.parameters(), lr=0.01)
    before = model.backbone.conv1.weight.detach().clone()

    model.train()
    data = model.data_preprocessor(_batch(), training=True)
    losses = model(**data, mode='loss')
    for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'loss_mask'):
        assert key in losses, key
    total = sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v)
                for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total) and total > 0
    total.backward()
    optim.step()
    assert not torch.equal(before, model.backbone.conv1.weight)

    model.eval()
    model.roi_head.test_cfg.score_thr = 0.0  # keep every box: an untrained model scores low
    with torch.no_grad():
        data = model.data_preprocessor(_batch(), training=False)
        (pred, ) = model(**data, mode='predict')
    inst = pred.pred_instances
    assert inst.bboxes.ndim == 2 and inst.bboxes.shape[1] == 4
    assert 0 < len(inst.bboxes) <= model.roi_head.test_cfg.max_per_img
    assert len(inst.bboxes) == len(inst.scores) == len(inst.labels) == len(inst.masks)
    assert inst.masks.shape[-2:] == (96, 96) and inst.masks.dtype == torch.bool
    assert ((inst.bboxes >= 0) & (inst.bboxes <= 96)).all()  # rescaled to the 96 x 96 input
