# A3D, 3 slices, random initialisation.
_base_ = './deeplesion_a3d_3slice.py'
model = dict(backbone=dict(init_cfg=None))
