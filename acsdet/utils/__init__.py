"""Small shared helpers."""
from .io import atomic_write, atomic_write_set, check_writable_dir, finish_write_set, mask_to_rle

__all__ = [
    'atomic_write', 'atomic_write_set', 'check_writable_dir', 'finish_write_set', 'mask_to_rle'
]
