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

import importlib

# Names are imported on first use: the command-line parser imports cvpipe.detection.names, and
# with eager imports here that alone would import torch (about 2 s) for `cvpipe --help`.
_API = {
    "Category": "annotations",
    "DetectionDataset": "annotations",
    "Detections": "annotations",
    "ImageInfo": "annotations",
    "Issue": "annotations",
    "read_image_size": "annotations",
    "ConversionReport": "conversion",
    "convert": "conversion",
    "CocoEvaluation": "evaluation",
    "VocEvaluation": "evaluation",
    "evaluate_coco": "evaluation",
    "evaluate_voc": "evaluation",
    "read_predictions": "evaluation",
    "voc_ap": "evaluation",
    "FORMATS": "names",
    "detect_format": "formats",
    "read_dataset": "formats",
    "write_dataset": "formats",
    "LintReport": "linting",
    "lint": "linting",
}


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(f"cvpipe.detection.{_API[name]}"), name)
    raise AttributeError(f"module 'cvpipe.detection' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))


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
