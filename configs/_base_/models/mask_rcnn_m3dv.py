# The M3DV/AlignShift DeepLesion detectors (AlignShift, MICCAI 2020; A3D, MICCAI 2021) with the
# semantics of the mmdet 1.0rc1 their weights were trained in, so that their released checkpoints
# (tools/model_converters/m3dv_to_acsdet.py) give their detections:
# - anchors: base 4, scales 4..48, ratios 0.5 / 1 / 2, centred on the grid point (their
#   AnchorHead passes ctr=[0, 0]), corners (size - 1) / 2 either side, rounded: mmdet 3's
#   LegacyAnchorGenerator with center_offset=0;
# - box decoding: mmdet 1.x's delta2bbox (+1 widths, +-0.5 corners): MMDetV1DeltaXYWHBBoxCoder;
# - RoIAlign: mmdet 1.x's sampling, (x2 + 1) / stride at the end, no half-pixel offset:
#   MMDetV1RoIExtractor over RoIAlign(aligned=False);
# - NMS with +1 areas (offset=1); no minimum box size (their min_bbox_size=0 filters nothing).
# The backbone's conv_mode and the test score threshold are set by each config.
_base_ = './mask_rcnn_truncated_densenet.py'
__anchor_generator = dict(
    type='LegacyAnchorGenerator',
    strides=[4],
    ratios=[0.5, 1.0, 2.0],
    scales=[4, 6, 8, 12, 24, 48],
    base_sizes=[4],
    center_offset=0.0)
__v1_roi_layer = dict(type='RoIAlign', sampling_ratio=2, aligned=False)
model = dict(
    backbone=dict(norm_cfg=dict(type='BN', requires_grad=True)),
    rpn_head=dict(
        anchor_generator=dict(_delete_=True, **__anchor_generator),
        bbox_coder=dict(type='MMDetV1DeltaXYWHBBoxCoder')),
    roi_head=dict(
        bbox_roi_extractor=dict(
            type='MMDetV1RoIExtractor', roi_layer=dict(__v1_roi_layer, output_size=7)),
        bbox_head=dict(bbox_coder=dict(type='MMDetV1DeltaXYWHBBoxCoder')),
        mask_roi_extractor=dict(
            type='MMDetV1RoIExtractor', roi_layer=dict(__v1_roi_layer, output_size=14))),
    train_cfg=dict(rpn_proposal=dict(nms=dict(offset=1), min_bbox_size=-1)),
    test_cfg=dict(
        rpn=dict(nms_pre=6000, max_per_img=300, nms=dict(offset=1), min_bbox_size=-1),
        rcnn=dict(nms=dict(offset=1), max_per_img=50, mask_thr_binary=0.5)))
