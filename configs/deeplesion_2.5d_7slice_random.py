# "2.5D r." of paper Table VII (Avg 83.05).
_base_ = './deeplesion_2.5d_7slice.py'
model = dict(backbone=dict(init_cfg=None))
