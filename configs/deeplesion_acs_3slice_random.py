# ACS, 3 slices, random initialisation (not in Table VII; for the ablation).
_base_ = './deeplesion_acs_3slice.py'
model = dict(backbone=dict(init_cfg=None))
