"""The RPN's ``nms_pre`` best anchors by a partial selection, not a sort of every anchor.

MMDetection's ``RPNHead._predict_by_feat_single`` sorts all of a level's anchor scores (its note:
"sort is faster than topk", on a GPU) to keep the ``nms_pre`` best. At 512 x 512 with 18 anchors
at stride 4 that is 294,912 scores a key slice: on this project's CPU their sort took 27-47 ms
and ``torch.topk`` of 6,000 2.5-3.8 ms (a quarter of the RPN's time apart from its convolution).
:func:`use_topk_proposals` makes an RPN head select them with ``topk`` (sorted, as the sort
gives them) and hand MMDetection's own method just those anchors, which it then decodes, filters
and suppresses as before: the same proposals, except which of several exactly equal scores at
the ``nms_pre``-th place is kept (neither a sort nor ``topk`` promises an order among ties).
"""
import types
from typing import List

import torch
from torch import Tensor

from mmdet.models.dense_heads import RPNHead


def _predict_by_feat_single(self, cls_score_list: List[Tensor], bbox_pred_list: List[Tensor],
                            score_factor_list, mlvl_priors: List[Tensor], img_meta: dict, cfg,
                            *args, **kwargs):
    """``RPNHead._predict_by_feat_single`` on each level's ``nms_pre`` best anchors: the level's
    maps ``(A, H, W)`` / ``(4 A, H, W)`` handed on as ``(1, k, 1)`` / ``(4, k, 1)`` maps of the
    selected anchors (which the method reads as a k x 1 map) with their priors ``(k, 4)``."""
    nms_pre = (self.test_cfg if cfg is None else cfg).get('nms_pre', -1)
    scores, deltas, priors = [], [], []
    for cls_score, bbox_pred, prior in zip(cls_score_list, bbox_pred_list, mlvl_priors):
        logits = cls_score.permute(1, 2, 0).reshape(-1)  # (H W A,): the method's order
        box = bbox_pred.permute(1, 2, 0).reshape(-1, self.bbox_coder.encode_size)
        if 0 < nms_pre < logits.numel():
            keep = logits.topk(nms_pre).indices  # sigmoid is monotonic: the best scores
            logits, box, prior = logits[keep], box[keep], prior[keep]
        scores.append(logits.view(1, -1, 1))
        deltas.append(box.t().unsqueeze(-1))  # (4, k, 1)
        priors.append(prior)
    return RPNHead._predict_by_feat_single(self, scores, deltas, score_factor_list, priors,
                                           img_meta, cfg, *args, **kwargs)


def use_topk_proposals(model: torch.nn.Module) -> int:
    """Make every MMDetection ``RPNHead`` in ``model`` with one sigmoid class select its
    ``nms_pre`` best anchors by ``topk`` (module doc); the number of heads changed."""
    changed = 0
    for m in model.modules():
        if type(m) is RPNHead and m.use_sigmoid_cls and m.cls_out_channels == 1:
            m._predict_by_feat_single = types.MethodType(_predict_by_feat_single, m)
            changed += 1
    return changed
