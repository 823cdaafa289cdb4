"""cvpipe: from a folder of images to a trained, evaluated, explained and exported vision model.

The Python API mirrors the command line::

    import cvpipe
    result = cvpipe.train("my.yaml", ["train.epochs=10"])          # cvpipe train my.yaml train.epochs=10
    report = cvpipe.evaluate(result.run_dir / "weights/best.pt")    # cvpipe eval CKPT
    preds = cvpipe.predict(result.run_dir / "weights/best.pt", "photos/")
    cams = cvpipe.cam(result.run_dir / "weights/best.pt", ["photos/"], methods=["gradcam"])
    prof = cvpipe.profile("resnet50", imgsz=224)
    onnx = cvpipe.export(result.run_dir / "weights/best.pt", format="onnx")   # cvpipe export CKPT

Names are imported on first use, so ``import cvpipe`` stays fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_API = {
    "train": "cvpipe.tasks.train",
    "evaluate": "cvpipe.tasks.evaluate",
    "predict": "cvpipe.tasks.predict",
    "export": "cvpipe.tasks.export",
    "load_trained": "cvpipe.tasks.common",
    "cam": "cvpipe.tasks.explain",
    "feature_maps": "cvpipe.tasks.explain",
    "profile": "cvpipe.tasks.explain",
    "load_config": "cvpipe.config",
    "Config": "cvpipe.config",
    "create_model": "cvpipe.models",
    "list_models": "cvpipe.models",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'cvpipe' has no attribute {name!r}")
