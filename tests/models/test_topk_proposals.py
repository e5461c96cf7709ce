"""use_topk_proposals: the nms_pre best anchors by topk, the proposals of MMDetection's sort."""
import torch
from mmengine.config import ConfigDict

import acsdet.all_modules  # noqa: F401  (registers acsdet's modules)
from acsdet.models.dense_heads import use_topk_proposals
from mmdet.registry import MODELS


def test_topk_gives_the_proposals_of_mmdetections_sort():
    torch.manual_seed(0)
    cfg = dict(
        type='RPNHead',
        in_channels=8,
        feat_channels=8,
        anchor_generator=dict(
            type='AnchorGenerator', strides=[4], ratios=[0.5, 1.0, 2.0], scales=[4, 8]),
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=[1.0] * 4),
        test_cfg=ConfigDict(
            nms_pre=300, max_per_img=50, nms=dict(type='nms', iou_threshold=0.7), min_bbox_size=0))
    sorted_head, topk_head = MODELS.build(cfg).eval(), MODELS.build(cfg).eval()
    topk_head.load_state_dict(sorted_head.state_dict())
    assert use_topk_proposals(topk_head) == 1
    feats = (torch.randn(2, 8, 32, 32), )  # 6144 anchors an image, 300 kept before NMS
    metas = [dict(img_shape=(128, 128), scale_factor=(1.0, 1.0))] * 2
    with torch.no_grad():
        a = sorted_head.predict_by_feat(*sorted_head(feats), batch_img_metas=metas)
        b = topk_head.predict_by_feat(*topk_head(feats), batch_img_metas=metas)
    for x, y in zip(a, b):
        assert len(x.bboxes) == 50
        assert torch.equal(x.bboxes, y.bboxes) and torch.equal(x.scores, y.scores)
    topk_head.test_cfg.nms_pre = 10**5  # more than there are: every anchor, as the sort
    with torch.no_grad():
        sorted_head.test_cfg.nms_pre = 10**5
        a = sorted_head.predict_by_feat(*sorted_head(feats), batch_img_metas=metas)
        b = topk_head.predict_by_feat(*topk_head(feats), batch_img_metas=metas)
    assert all(torch.equal(x.bboxes, y.bboxes) for x, y in zip(a, b))
