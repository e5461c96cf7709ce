# TSM, 3 slices, ImageNet-pretrained.
_base_ = './deeplesion_acs_3slice.py'
model = dict(backbone=dict(conv_mode='tsm', n_fold=8))
