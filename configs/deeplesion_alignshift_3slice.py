# AlignShift, 3 slices, ImageNet-pretrained, as the authors train it (see the 7-slice config).
_base_ = [
    '_base_/models/mask_rcnn_alignshift.py', '_base_/datasets/deeplesion_alignshift_3slice.py',
    '_base_/schedules/schedule_20e.py', '_base_/default_runtime.py'
]
pretrained = 'checkpoints/densenet121-a639ec97.pth'
model = dict(backbone=dict(num_slices=3, init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
