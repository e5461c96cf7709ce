# A3D as in the authors' deeplesion/mconfigs/densenet_a3d.py (DenseNetCustomTrunc3dA3D), 7 slices.
# Runs the released M3DV/AlignShift weights converted by
# tools/model_converters/m3dv_to_acsdet.py (docs/released_models.md).
_base_ = [
    '../_base_/models/mask_rcnn_m3dv.py', '../_base_/datasets/deeplesion_m3dv.py',
    '../_base_/schedules/schedule_20e.py', '../_base_/default_runtime.py'
]
model = dict(
    backbone=dict(conv_mode='a3d', num_slices=7),
    test_cfg=dict(rcnn=dict(score_thr=0.00005)))
