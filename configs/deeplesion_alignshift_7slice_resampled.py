# AlignShift, 7 slices, on the same input as the ACS / 2.5D / 3D / A3D / TSM configs: every
# series resampled at 2 mm (the base DeepLesion pipelines). The shift is still weighted by the
# series' original slice interval (slice_interval, in every sample's meta): the slices of a thick
# series, interpolated at 2 mm, carry that series' blur along depth. The model is
# deeplesion_alignshift_7slice.py's.
_base_ = [
    '_base_/models/mask_rcnn_alignshift.py', '_base_/datasets/deeplesion.py',
    '_base_/schedules/schedule_20e.py', '_base_/default_runtime.py'
]
pretrained = 'checkpoints/densenet121-a639ec97.pth'
model = dict(backbone=dict(num_slices=7, init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
