"""Inference-time variants of MMDetection dense heads (applied to a built model, not registered)."""
from .topk_proposals import use_topk_proposals

__all__ = ['use_topk_proposals']
