"""Small shared helpers."""
from .io import (atomic_save, atomic_write, atomic_write_set, check_writable_dir, finish_write_set,
                 json_safe, mask_to_rle, owner_is_dead, owner_tag, stale_temporaries,
                 temporary_name)

__all__ = [
    'atomic_save', 'atomic_write', 'atomic_write_set', 'check_writable_dir', 'finish_write_set',
    'json_safe', 'mask_to_rle', 'owner_is_dead', 'owner_tag', 'stale_temporaries', 'temporary_name'
]
