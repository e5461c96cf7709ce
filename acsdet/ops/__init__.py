"""3D convolution operators that reuse 2D weights: ACS, Mean-ACS, Soft-ACS, 2.5D, A3D, TSM and
AlignShift."""
from .a3d import A3DConv, SliceFusion
from .acs_conv import ACSConv, ACSConvTranspose, acs_conv3d, default_acs_split
from .conv2_5d import Conv2_5d, ConvTranspose2_5d
from .shift import AlignShiftConv, TSMConv, slice_shift, slice_thickness
from .soft_acs import MeanACSConv, SoftACSConv, soft_acs_conv3d

__all__ = [
    'A3DConv', 'SliceFusion', 'ACSConv', 'ACSConvTranspose', 'Conv2_5d', 'ConvTranspose2_5d',
    'acs_conv3d', 'default_acs_split', 'AlignShiftConv', 'TSMConv', 'slice_shift',
    'slice_thickness', 'MeanACSConv', 'SoftACSConv', 'soft_acs_conv3d'
]
