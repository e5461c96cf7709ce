# A3D (asymmetric slice fusion before every (1, 3, 3) conv), 7 slices, ImageNet-pretrained 2D
# weights; the fusion matrices start at the identity. Not in the ACS paper's Table VII; the A3D
# paper (MICCAI 2021) reports its own DeepLesion results.
_base_ = './deeplesion_acs_7slice.py'
model = dict(backbone=dict(conv_mode='a3d'))
