# AlignShift as in the authors' deeplesion/mconfigs/densenet_align.py (DenseNetCustomTrunc3dAlign), 7 slices.
# Runs the released M3DV/AlignShift weights converted by
# tools/model_converters/m3dv_to_acsdet.py (docs/released_models.md).
_base_ = [
    '../_base_/models/mask_rcnn_m3dv.py', '../_base_/datasets/deeplesion_m3dv_align.py',
    '../_base_/schedules/schedule_20e.py', '../_base_/default_runtime.py'
]
model = dict(
    type='ThicknessAwareMaskRCNN',
    thickness_key='slice_interval',
    backbone=dict(conv_mode='alignshift', num_slices=7, n_fold=8, ref_thickness=2.0),
    test_cfg=dict(rcnn=dict(score_thr=0.001)))
