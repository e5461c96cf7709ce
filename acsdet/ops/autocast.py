"""acsdet's custom autograd functions under ``torch.autocast``, as ``F.conv3d`` behaves there."""
from typing import Optional, Sequence

import torch


def apply_as_convolution(function, tensors: Sequence[Optional[torch.Tensor]], *conf):
    """``function.apply(*tensors, *conf)``, the way autocast treats a convolution (its
    lower-precision list: CUDA float16 and CPU bfloat16 alike): the tensors (None kept) are cast
    to the autocast dtype and the function runs with autocast off, so its forward and its
    hand-written backward compute in that one dtype; the casts carry the gradients back to the
    float32 parameters (what ``torch.amp.custom_fwd(cast_inputs=...)`` does, for any device)."""
    device = tensors[0].device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        with torch.autocast(device, enabled=False):
            return function.apply(*(None if t is None else t.to(dtype) for t in tensors), *conf)
    return function.apply(*tensors, *conf)
