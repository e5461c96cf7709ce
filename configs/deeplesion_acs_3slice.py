# "ACS p." with 3 slices, paper Table VII (Avg 83.25).
_base_ = [
    '_base_/models/mask_rcnn_truncated_densenet.py', '_base_/datasets/deeplesion_3slice.py',
    '_base_/schedules/schedule_20e.py', '_base_/default_runtime.py'
]
pretrained = 'checkpoints/densenet121-a639ec97.pth'
model = dict(
    backbone=dict(
        conv_mode='acs', num_slices=3, init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
