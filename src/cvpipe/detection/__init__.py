"""Detection datasets and evaluation.

One in-memory form (:class:`DetectionDataset`, boxes ``xyxy`` continuous pixels) read from and
written to COCO JSON, Pascal VOC, YOLO and the notes' txt format; conversion
(:func:`convert`), checks (:func:`lint`) and evaluation (:func:`evaluate_coco`,
:func:`evaluate_voc`)::

    from cvpipe import detection
    report = detection.convert("VOC2007", "coco_out", dst_format="coco", min_size=2)
    print(detection.lint("coco_out").format_text())
    result = detection.evaluate_coco("coco_out/annotations/instances.json", "results.json")
    print(result.summary())
"""

from cvpipe.detection.annotations import (
    Category,
    DetectionDataset,
    Detections,
    ImageInfo,
    Issue,
    read_image_size,
)
from cvpipe.detection.conversion import ConversionReport, convert
from cvpipe.detection.evaluation import (
    CocoEvaluation,
    VocEvaluation,
    evaluate_coco,
    evaluate_voc,
    read_predictions,
    voc_ap,
)
from cvpipe.detection.formats import FORMATS, detect_format, read_dataset, write_dataset
from cvpipe.detection.linting import LintReport, lint

__all__ = [
    "FORMATS",
    "Category",
    "CocoEvaluation",
    "ConversionReport",
    "DetectionDataset",
    "Detections",
    "ImageInfo",
    "Issue",
    "LintReport",
    "VocEvaluation",
    "convert",
    "detect_format",
    "evaluate_coco",
    "evaluate_voc",
    "lint",
    "read_dataset",
    "read_image_size",
    "read_predictions",
    "voc_ap",
    "write_dataset",
]
