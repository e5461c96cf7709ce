# DeepLesion as the M3DV/AlignShift code feeds its models (DeepLesionDataset{TSM,A3D,25d}), 7
# slices, for their released weights: the first neighbour's interpolation weights for every
# neighbour (fraction_rule='first'), HU [-1024, 2050] -> [0, 255] minus 50; as the base: resize
# to 512 keeping the ratio, no spacing normalisation, padding to 32 (the model's data
# preprocessor), the original slice interval in the meta (AlignShift's thickness).
_base_ = './deeplesion.py'
# the base's pipelines with these arguments changed (by step type)
__changes = dict(
    LoadDeepLesionSlices=dict(keep_thick_slices=False, fraction_rule='first'),
    HUWindowNormalize=dict(window=(-1024, 2050), out_range=(-50, 205)))
train_pipeline = [dict(s, **__changes.get(s.type, {})) for s in _base_.train_pipeline]
test_pipeline = [dict(s, **__changes.get(s.type, {})) for s in _base_.test_pipeline]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
