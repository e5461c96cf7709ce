# The DeepLesion pipelines with 3 slices (2 mm apart) instead of 7.
_base_ = './deeplesion.py'
num_slices = 3
train_pipeline = [
    dict(type='LoadDeepLesionSlices', num_slices=num_slices, target_interval=2.0),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='HUWindowNormalize', window={{_base_.hu_window}}),
    dict(type='Resize', scale=({{_base_.image_size}}, {{_base_.image_size}}), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomShiftScaleRotate', shift=0.04, scale=0.2, rotate=15, prob=0.8),
    dict(type='PackDetInputs', meta_keys={{_base_.train_meta_keys}}),
]
test_pipeline = [
    dict(type='LoadDeepLesionSlices', num_slices=num_slices, target_interval=2.0),
    dict(type='HUWindowNormalize', window={{_base_.hu_window}}),
    dict(type='Resize', scale=({{_base_.image_size}}, {{_base_.image_size}}), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys={{_base_.test_meta_keys}}),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
