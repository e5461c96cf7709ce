# The DeepLesion pipelines with 3 slices (2 mm apart) instead of 7.
_base_ = './deeplesion.py'
num_slices = 3
# the base's pipelines with these arguments changed (by step type)
__changes = dict(LoadDeepLesionSlices=dict(num_slices=num_slices))
train_pipeline = [dict(s, **__changes.get(s.type, {})) for s in _base_.train_pipeline]
test_pipeline = [dict(s, **__changes.get(s.type, {})) for s in _base_.test_pipeline]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
