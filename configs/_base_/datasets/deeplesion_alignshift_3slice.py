# DeepLesion pipelines for AlignShift as its authors feed it, 3 slices: series with slices thinner
# than 2 mm are resampled at 2 mm, thicker ones give their neighbouring slices as they are
# (keep_thick_slices), and every sample carries its original slice interval (slice_interval,
# mm) in its meta, in training too, for ThicknessAwareMaskRCNN to hand to the backbone.
_base_ = './deeplesion_3slice.py'
# the base's pipelines with these arguments changed (by step type)
__changes = dict(LoadDeepLesionSlices=dict(keep_thick_slices=True))
train_pipeline = [dict(s, **__changes.get(s.type, {})) for s in _base_.train_pipeline]
test_pipeline = [dict(s, **__changes.get(s.type, {})) for s in _base_.test_pipeline]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
