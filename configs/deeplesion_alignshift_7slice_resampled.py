# AlignShift, 7 slices, on the same input as the ACS / 2.5D / 3D / A3D / TSM configs: every
# series resampled at 2 mm. The shift is still weighted by the series' original slice interval
# (slice_interval, now in the training samples' meta too): the slices of a thick series,
# interpolated at 2 mm, carry that series' blur along depth.
_base_ = './deeplesion_alignshift_7slice.py'
train_pipeline = [
    dict(type='LoadDeepLesionSlices', num_slices=7, target_interval=2.0),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='HUWindowNormalize', window={{_base_.hu_window}}),
    dict(type='Resize', scale=({{_base_.image_size}}, {{_base_.image_size}}), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomShiftScaleRotate', shift=0.04, scale=0.2, rotate=15, prob=0.8),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                   'flip_direction', 'slice_interval')),
]
test_pipeline = [
    dict(type='LoadDeepLesionSlices', num_slices=7, target_interval=2.0),
    dict(type='HUWindowNormalize', window={{_base_.hu_window}}),
    dict(type='Resize', scale=({{_base_.image_size}}, {{_base_.image_size}}), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'instances',
                   'slice_interval', 'key_slice', 'dicom_window')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
