# DeepLesion as the M3DV/AlignShift code feeds its models, 3 slices (DeepLesionDataset{TSM,A3D,25d}: every series resampled at 2 mm), for their
# released weights: the first neighbour's interpolation weights for every neighbour
# (fraction_rule='first'), HU [-1024, 2050] -> [0, 255] minus 50, resize to 512 (keep ratio), no
# spacing normalisation, padding to 32 (the model's data preprocessor). AlignShift's thickness
# is each sample's original slice interval (slice_interval).
_base_ = './deeplesion.py'
num_slices = 3
loading = dict(
    type='LoadDeepLesionSlices',
    num_slices=num_slices,
    target_interval=2.0,
    keep_thick_slices=False,
    fraction_rule='first')
window = dict(type='HUWindowNormalize', window=(-1024, 2050), out_range=(-50, 205))
resize = dict(type='Resize', scale=(512, 512), keep_ratio=True)
train_pipeline = [
    loading,
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True), window, resize,
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomShiftScaleRotate', shift=0.04, scale=0.2, rotate=15, prob=0.8),
    dict(type='PackDetInputs', meta_keys={{_base_.train_meta_keys}}),
]
test_pipeline = [
    loading, window, resize,
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys={{_base_.test_meta_keys}}),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
