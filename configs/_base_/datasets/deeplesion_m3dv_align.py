# The M3DV/AlignShift input of DeepLesionDatasetAlign, 7 slices: series of 2 mm or thicker give
# their direct neighbours (keep_thick_slices), thinner ones are interpolated at 2 mm.
_base_ = './deeplesion_m3dv.py'
# the base's pipelines with these arguments changed (by step type)
__changes = dict(LoadDeepLesionSlices=dict(keep_thick_slices=True))
train_pipeline = [dict(s, **__changes.get(s.type, {})) for s in _base_.train_pipeline]
test_pipeline = [dict(s, **__changes.get(s.type, {})) for s in _base_.test_pipeline]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
