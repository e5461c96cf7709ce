"""Drawing CT key slices with lesions: one visualiser, one palette, for the test-time pictures
(``--show-dir``) and the inference report's overlays."""
from .lesion_visualizer import GT_COLOR, PRED_COLOR, RECIST_COLOR, LesionVisualizer

__all__ = ['GT_COLOR', 'PRED_COLOR', 'RECIST_COLOR', 'LesionVisualizer']
