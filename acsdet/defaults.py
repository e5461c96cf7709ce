"""The defaults of the paper's detector setting, in one place (signatures refer to these names).

- :data:`TARGET_INTERVAL_MM`: the slice spacing every stack is sampled at (DeepLesion's slices
  normalised to 2 mm, as in the ACS paper, MULAN and AlignShift).
- :data:`NUM_SLICES`: D, the slices of one input stack (the paper's headline setting, Table VII).
- :data:`SHIFT_N_FOLD`: TSM / AlignShift shift 1/n of the channels each way (the authors' 8).
- :data:`ALIGNSHIFT_REF_THICKNESS_MM`: AlignShift's reference thickness (the authors' 2 mm).
"""
TARGET_INTERVAL_MM = 2.0
NUM_SLICES = 7
SHIFT_N_FOLD = 8
ALIGNSHIFT_REF_THICKNESS_MM = 2.0
