"""Box operations: formats, the IoU family, IoU losses and the NMS family.

Depends on torch and torchvision only. Boxes are ``xyxy`` continuous pixels unless a function
says otherwise; see :mod:`cvpipe.ops.boxes` for the conventions shared by every function here.
"""

from cvpipe.ops.boxes import (
    BOX_FORMATS,
    box_area,
    box_convert,
    box_iou,
    clip_boxes,
    complete_box_iou,
    denormalize_boxes,
    distance_box_iou,
    generalized_box_iou,
    normalize_boxes,
    remove_small_boxes,
)
from cvpipe.ops.losses import (
    box_l1_loss,
    box_smooth_l1_loss,
    complete_box_iou_loss,
    distance_box_iou_loss,
    generalized_box_iou_loss,
    iou_loss,
)
from cvpipe.ops.suppression import (
    NMS_METHODS,
    and_nms,
    batched_nms,
    diou_nms,
    matrix_nms,
    nms,
    non_max_suppression,
    soft_nms,
    weighted_nms,
)

__all__ = [
    "BOX_FORMATS",
    "NMS_METHODS",
    "and_nms",
    "batched_nms",
    "box_l1_loss",
    "box_smooth_l1_loss",
    "complete_box_iou_loss",
    "diou_nms",
    "distance_box_iou_loss",
    "generalized_box_iou_loss",
    "iou_loss",
    "matrix_nms",
    "nms",
    "non_max_suppression",
    "soft_nms",
    "weighted_nms",
    "box_area",
    "box_convert",
    "box_iou",
    "clip_boxes",
    "complete_box_iou",
    "denormalize_boxes",
    "distance_box_iou",
    "generalized_box_iou",
    "normalize_boxes",
    "remove_small_boxes",
]
