# A3D, 7 slices, random initialisation.
_base_ = './deeplesion_a3d_7slice.py'
model = dict(backbone=dict(init_cfg=None))
