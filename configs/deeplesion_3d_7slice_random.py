# "3D r." of paper Table VII (Avg 77.20): (3, 3, 3) Conv3d, random initialisation.
_base_ = './deeplesion_3d_7slice.py'
model = dict(backbone=dict(init_cfg=None))
