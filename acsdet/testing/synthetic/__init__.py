"""A synthetic DeepLesion in the exact DeepLesion layout, for tests, benchmarks and the demo:
rendered (:mod:`.render`), annotated (:mod:`.annotate`) and written (:mod:`.write`)."""
from .annotate import measure_recist
from .write import make_synthetic_deeplesion

__all__ = ['make_synthetic_deeplesion', 'measure_recist']
