# "3D p. I3D" of paper Table VII (Avg 84.92): (3, 3, 3) Conv3d inflated from the 2D weights.
_base_ = './deeplesion_acs_7slice.py'
model = dict(backbone=dict(conv_mode='3d'))
