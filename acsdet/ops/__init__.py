"""3D convolution operators that reuse 2D weights: ACS, 2.5D and A3D."""
from .acs_conv import ACSConv, ACSConvTranspose, acs_conv3d, default_acs_split
from .a3d import A3DConv, SliceFusion
from .conv2_5d import Conv2_5d, ConvTranspose2_5d

__all__ = [
    'A3DConv', 'SliceFusion', 'ACSConv', 'ACSConvTranspose', 'Conv2_5d', 'ConvTranspose2_5d',
    'acs_conv3d', 'default_acs_split'
]
