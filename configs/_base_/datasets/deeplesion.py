# DeepLesion key slices with D slices at 2 mm around each (data_converters/deeplesion_to_coco.py
# writes the annotation files). Override the data root with `--data-root DIR` on tools/train.py
# and tools/test.py, or edit `data_root` in your config. `--slice-cache DIR` sets `cache_dir` on
# every LoadDeepLesionSlices step: decoded slices are kept on disk and epochs after the first
# skip PNG decoding (docs/benchmarks.md).
dataset_type = 'DeepLesionDataset'
data_root = 'data/deeplesion/'
ann_dir = 'annotations/'
num_slices = 7
image_size = 512
hu_window = (-1024, 2050)
backend_args = None
# What PackDetInputs keeps in every sample's meta (the other dataset configs refer to these):
# training adds the series' original slice interval (mm; ThicknessAwareMaskRCNN's thickness) to
# MMDetection's default keys; testing keeps the annotations for FROCMetric and the key slice.
train_meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                   'flip_direction', 'slice_interval')
test_meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'instances',
                  'slice_interval', 'key_slice', 'dicom_window')

train_pipeline = [
    dict(type='LoadDeepLesionSlices', num_slices=num_slices, target_interval=2.0),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='HUWindowNormalize', window=hu_window),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomShiftScaleRotate', shift=0.04, scale=0.2, rotate=15, prob=0.8),
    dict(type='PackDetInputs', meta_keys=train_meta_keys),
]
# GT stays in original image coordinates: LoadAnnotations after Resize; FROCMetric reads the
# dataset's `instances` (packed as a meta key) and the predictions rescaled by `scale_factor`.
test_pipeline = [
    dict(type='LoadDeepLesionSlices', num_slices=num_slices, target_interval=2.0),
    dict(type='HUWindowNormalize', window=hu_window),
    dict(type='Resize', scale=(image_size, image_size), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=test_meta_keys),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=ann_dir + 'deeplesion_train.json',
        data_prefix=dict(img='Images_png/'),
        drop_noisy=True,
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=ann_dir + 'deeplesion_val.json',
        data_prefix=dict(img='Images_png/'),
        test_mode=True,
        drop_noisy=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
# the validation loader on the test split
test_dataloader = dict(
    val_dataloader,
    dataset=dict(val_dataloader['dataset'], ann_file=ann_dir + 'deeplesion_test.json'))
val_evaluator = dict(type='FROCMetric')
test_evaluator = val_evaluator
