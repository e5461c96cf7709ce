# ACS Mask R-CNN, 7 slices, ImageNet-pretrained: "ACS p." of paper Table VII (Avg 86.76).
# `pretrained`: a torchvision DenseNet-121 state dict (densenet121-a639ec97.pth), downloaded by
# you (acsdet never downloads at run time). deeplesion_acs_7slice_random.py is "ACS r.".
_base_ = [
    '_base_/models/mask_rcnn_truncated_densenet.py', '_base_/datasets/deeplesion.py',
    '_base_/schedules/schedule_20e.py', '_base_/default_runtime.py'
]
pretrained = 'checkpoints/densenet121-a639ec97.pth'
model = dict(
    backbone=dict(
        conv_mode='acs', num_slices=7, init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
