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

__all__ = [
    "BOX_FORMATS",
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
