# "2.5D p." of paper Table VII (Avg 83.73): every 3x3 conv is a (1, 3, 3) Conv3d.
_base_ = './deeplesion_acs_7slice.py'
model = dict(backbone=dict(conv_mode='2.5d'))
