# "ACS r." of paper Table VII (Avg 85.87): ACS, 7 slices, random initialisation.
_base_ = './deeplesion_acs_7slice.py'
model = dict(backbone=dict(init_cfg=None))
