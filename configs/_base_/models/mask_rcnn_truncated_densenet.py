# Mask R-CNN on a truncated DenseNet-121 3D-to-2D backbone with one stride-4 level
# (paper section IV-D; heads as in the AlignShift code the paper's experiments used).
model = dict(
    type='MaskRCNN',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        # the pipeline normalises HU to [0, 1]; slices stay channels (no RGB handling)
        mean=[0.0],
        std=[1.0],
        bgr_to_rgb=False,
        pad_mask=True,
        pad_size_divisor=32),
    backbone=dict(
        type='TruncatedDenseNet',
        conv_mode='acs',
        num_slices=7,
        out_indices=(0, 1, 2),
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        frozen_stages=-1),
    neck=dict(type='TopDownDecoder', in_channels=[256, 512, 1024], out_channels=512, num_outs=1),
    rpn_head=dict(
        type='RPNHead',
        in_channels=512,
        feat_channels=512,
        anchor_generator=dict(
            type='AnchorGenerator',
            strides=[4],
            ratios=[0.5, 1.0, 2.0],
            scales=[4, 6, 8, 12, 24, 48]),  # x stride 4 = 16, 24, 32, 48, 96, 192 px
        bbox_coder=dict(
            type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=[1.0, 1.0, 1.0, 1.0]),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True, loss_weight=1.0),
        loss_bbox=dict(type='SmoothL1Loss', beta=1.0 / 9.0, loss_weight=1.0)),
    roi_head=dict(
        type='StandardRoIHead',
        bbox_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=7, sampling_ratio=2, aligned=True),
            out_channels=512,
            featmap_strides=[4]),
        bbox_head=dict(
            type='Shared2FCBBoxHead',
            in_channels=512,
            fc_out_channels=2048,
            roi_feat_size=7,
            num_classes=1,
            bbox_coder=dict(
                type='DeltaXYWHBBoxCoder', target_means=[0.0] * 4, target_stds=[0.1, 0.1, 0.2,
                                                                                0.2]),
            reg_class_agnostic=False,
            loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
            loss_bbox=dict(type='SmoothL1Loss', beta=1.0, loss_weight=1.0)),
        mask_roi_extractor=dict(
            type='SingleRoIExtractor',
            roi_layer=dict(type='RoIAlign', output_size=14, sampling_ratio=2, aligned=True),
            out_channels=512,
            featmap_strides=[4]),
        mask_head=dict(
            type='FCNMaskHead',
            num_convs=4,
            in_channels=512,
            conv_out_channels=256,
            num_classes=1,
            # MaskDiceLoss, not mmdet's DiceLoss: see acsdet/models/losses/mask_dice_loss.py
            loss_mask=dict(type='MaskDiceLoss', use_sigmoid=True, activate=True, loss_weight=1.0))),
    train_cfg=dict(
        rpn=dict(
            assigner=dict(
                type='MaxIoUAssigner',
                pos_iou_thr=0.7,
                neg_iou_thr=0.3,
                min_pos_iou=0.3,
                match_low_quality=True,
                ignore_iof_thr=-1),
            sampler=dict(
                type='RandomSampler',
                num=32,
                pos_fraction=0.5,
                neg_pos_ub=-1,
                add_gt_as_proposals=False),
            allowed_border=-1,
            pos_weight=-1,
            debug=False),
        rpn_proposal=dict(
            nms_pre=12000,
            max_per_img=2000,
            nms=dict(type='nms', iou_threshold=0.7),
            min_bbox_size=0),
        rcnn=dict(
            assigner=dict(
                type='MaxIoUAssigner',
                pos_iou_thr=0.5,
                neg_iou_thr=0.5,
                min_pos_iou=0.5,
                match_low_quality=True,
                ignore_iof_thr=-1),
            sampler=dict(
                type='RandomSampler',
                num=64,
                pos_fraction=0.25,
                neg_pos_ub=-1,
                add_gt_as_proposals=True),
            mask_size=28,
            pos_weight=-1,
            debug=False)),
    test_cfg=dict(
        rpn=dict(
            nms_pre=6000, max_per_img=300, nms=dict(type='nms', iou_threshold=0.7),
            min_bbox_size=0),
        rcnn=dict(
            score_thr=0.005,
            nms=dict(type='nms', iou_threshold=0.5),
            max_per_img=50,
            mask_thr_binary=0.5)))
