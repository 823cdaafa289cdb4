"""``cvpipe predict``: top-k labels for an image, a folder, a glob, a video file or a webcam.

Results are printed, saved as ``predictions.csv`` and ``predictions.json``, and drawn on the
images (``annotated/``). A video gives an annotated copy and per-frame results.

    preds = cvpipe.predict("runs/train/exp/weights/best.pt", "photos/")
    preds[0].labels, preds[0].probs
"""

from __future__ import annotations

import csv
import glob
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import torch

from cvpipe.engine.inference import to_device
from cvpipe.engine.logger import get_logger
from cvpipe.engine.progress import Progress
from cvpipe.errors import ConfigError, DataError
from cvpipe.tasks.common import Trained, check_at_least, device_for, increment_run_dir, load_trained
from cvpipe.utils import natural_key

VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv"}


@dataclass
class Prediction:
    source: str  # file path, or "video.mp4#frame=12"
    labels: list[str]  # top-k (single-label) or those above the threshold (multi-label)
    probs: list[float]


def predict(
    checkpoint: Union[str, Path, Trained],
    source: Union[str, Path, int],
    *,
    topk: int = 5,
    threshold: Optional[float] = None,
    batch_size: int = 32,
    device: str = "auto",
    save: bool = True,
    project: Union[str, Path] = "runs/predict",
    name: str = "exp",
    exist_ok: bool = False,
    max_frames: int = 0,
    verbose: bool = True,
) -> list[Prediction]:
    """Predict every image (or frame) in ``source``; see the module docstring for sources.

    ``threshold`` applies to multi-label models (default: the training config's). ``max_frames``
    limits video and webcam input (0 = all; a webcam runs until Ctrl-C).
    """
    check_at_least(1, topk=topk, batch=batch_size)
    check_at_least(0, max_frames=max_frames)
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ConfigError(f"threshold={threshold}: a probability in [0, 1]")
    trained = checkpoint if isinstance(checkpoint, Trained) else load_trained(checkpoint)
    dev = device_for(device)
    trained.model.to(dev).eval()
    if threshold is None:
        threshold = trained.config.data.threshold
    log = get_logger()
    kind, items = resolve_source(source)
    out_dir = increment_run_dir(project, name, exist_ok) if save else None
    try:
        if kind == "images":
            preds = _predict_images(trained, items, dev, topk, threshold, batch_size, out_dir, verbose)
        else:
            preds = _predict_video(trained, items[0], dev, topk, threshold, batch_size, out_dir, max_frames, verbose)
    except DataError:
        if out_dir is not None and not any(out_dir.iterdir()):
            out_dir.rmdir()  # nothing was predicted: leave no empty numbered folder behind
        raise
    if out_dir is not None:
        _write_results(preds, out_dir)
        log.info(f"{len(preds)} predictions saved to {out_dir}")
    return preds


def resolve_source(source: Union[str, Path, int]) -> tuple[str, list]:
    """("images", [paths]) for a file, folder or glob; ("video", [path or camera index])."""
    from cvpipe.data.image_io import is_image_file
    from cvpipe.data.layouts import list_images

    if isinstance(source, int) or (isinstance(source, str) and source.isdigit()):
        return "video", [int(source)]
    path = Path(source)
    if path.is_dir():
        files = list_images(path)  # as training lists folders: hidden files (._IMG.jpg) left out
        if not files:
            raise DataError(f"{path}: no images found (looked for common image extensions, recursively)")
        return "images", files
    if path.is_file():
        if path.suffix.lower() in VIDEO_EXTENSIONS:
            return "video", [path]
        return "images", [path]
    if any(ch in str(source) for ch in "*?["):
        files = _unique_files(Path(p) for p in glob.glob(str(source), recursive=True) if is_image_file(p))
        if not files:
            raise DataError(f"{source}: the pattern matches no images")
        return "images", files
    raise DataError(f"{source}: no such file, folder or pattern")


def _unique_files(paths) -> list[Path]:
    """Glob matches in natural order, each file once: ``**`` follows symlinked folders, so a
    link to a folder already matched (or a loop, up to the system's link depth) would list the
    same images again; as for a folder, the shortest path to each is kept."""
    chosen: dict[tuple[str, str], Path] = {}
    for path in sorted(paths, key=lambda p: (len(p.parts), natural_key(str(p)))):
        chosen.setdefault((os.path.realpath(path.parent), path.name), path)
    return sorted(chosen.values(), key=lambda p: natural_key(str(p)))


# ------------------------------------------------------------------------------- images


class _ImageFiles(torch.utils.data.Dataset):
    """Decodes and preprocesses one file; an unreadable file yields its error instead."""

    def __init__(self, paths: Sequence[Path], trained: Trained):
        self.paths, self.mode, self.transform = list(paths), trained.image_mode, trained.transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from cvpipe.data.image_io import read_image

        try:
            image = read_image(self.paths[i], mode=self.mode)
        except DataError as e:
            return i, None, None, str(e)
        return i, image, self.transform(image), ""


def _collate(batch):
    return batch  # ragged originals; stacked after dropping failures


def _predict_images(trained, paths, device, topk, threshold, batch_size, out_dir, verbose) -> list[Prediction]:
    log = get_logger()
    loader = torch.utils.data.DataLoader(
        _ImageFiles(paths, trained), batch_size=batch_size, num_workers=min(4, os.cpu_count() or 1, len(paths) // batch_size), collate_fn=_collate
    )
    preds: list[Prediction] = []
    errors: list[str] = []
    outputs = _annotated_names(paths)
    for batch in Progress(loader, desc="predict", enabled=len(paths) > batch_size, unit="batch"):
        good = [b for b in batch if b[1] is not None]
        for _, _, _, error in (b for b in batch if b[1] is None):
            if len(paths) > 1:  # a lone image's error is raised below
                log.info(f"skipped: {error}")
            errors.append(error)
        if not good:
            continue
        x = torch.stack([b[2] for b in good])
        probs = _probabilities(trained, x, device)
        for (i, image, _, _), p in zip(good, probs):
            pred = _top_labels(trained, p, topk, threshold, str(paths[i]))
            preds.append(pred)
            if verbose:
                log.info(_describe(pred))
            if out_dir is not None:
                _save_annotated(image, pred, out_dir / "annotated" / outputs[i])
    if not preds:
        raise DataError(errors[0] if len(errors) == 1 else f"none of the {len(errors)} images could be read; the first: {errors[0]}")
    return preds


def _annotated_names(paths: Sequence[Path]) -> list[Path]:
    """Where each image's annotated copy goes: its path below the images' common folder, as
    PNG, so that ``a/x.jpg`` and ``b/x.jpg`` do not overwrite each other; names that would
    still collide (``x.jpg`` and ``x.png``) keep their extension (``x.jpg.png``)."""
    absolute = [Path(os.path.abspath(p)) for p in paths]
    base = os.path.commonpath([str(p.parent) for p in absolute])
    relative = [p.relative_to(base) for p in absolute]
    plain = [r.with_suffix(".png") for r in relative]
    counts = Counter(plain)
    return [p if counts[p] == 1 else r.with_name(r.name + ".png") for p, r in zip(plain, relative)]


@torch.no_grad()
def _probabilities(trained: Trained, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    logits = trained.model(to_device(x, device)).float().cpu()
    return torch.sigmoid(logits) if trained.multi_label else torch.softmax(logits, dim=1)


def _top_labels(trained: Trained, probs: torch.Tensor, topk: int, threshold: float, source: str) -> Prediction:
    if trained.multi_label:
        order = torch.argsort(probs, descending=True)
        keep = order[probs[order] >= threshold].tolist()
    else:
        keep = probs.topk(min(topk, probs.numel())).indices.tolist()
    return Prediction(source, [trained.classes[i] for i in keep], [round(float(probs[i]), 6) for i in keep])


def _describe(pred: Prediction) -> str:
    shown = ", ".join(f"{label} {p:.3f}" for label, p in zip(pred.labels, pred.probs)) or "(no label above threshold)"
    return f"{pred.source}: {shown}"


def _save_annotated(image: torch.Tensor, pred: Prediction, path: Path) -> None:
    from PIL import Image

    from cvpipe.viz import to_hwc_uint8

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(annotate(to_hwc_uint8(image), pred)).save(path)


def annotate(rgb: np.ndarray, pred: Prediction, max_lines: int = 3) -> np.ndarray:
    """Write the top labels in the image's top-left corner; (H, W, 3) uint8 RGB in and out.

    Tiny images (digits are 8x8) are enlarged first so the text stays readable.
    """
    import cv2

    h, w = rgb.shape[:2]
    if min(h, w) < 160:
        s = 160 / min(h, w)
        rgb = cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_NEAREST)
        h, w = rgb.shape[:2]
    out = np.ascontiguousarray(rgb).copy()
    scale = max(0.4, min(h, w) / 400)
    thick = max(1, round(scale * 2))
    y = 0
    for label, p in list(zip(pred.labels, pred.probs))[:max_lines]:
        text = f"{label} {p:.2f}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        cv2.rectangle(out, (0, y), (tw + 6, y + th + base + 6), (0, 0, 0), -1)
        cv2.putText(out, text, (3, y + th + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
        y += th + base + 6
    return out


# ------------------------------------------------------------------------------- video


def _predict_video(trained, source, device, topk, threshold, batch_size, out_dir, max_frames, verbose) -> list[Prediction]:
    import cv2

    capture = _open_capture(source)
    if not capture.isOpened():
        what = f"camera {source}" if isinstance(source, int) else str(source)
        raise DataError(f"{what}: cannot open the video (missing codec, wrong index or not a video)")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    if max_frames:
        total = min(total, max_frames) if total else max_frames
    name = f"camera{source}" if isinstance(source, int) else Path(source).stem
    writer = None
    preds: list[Prediction] = []
    try:
        frames = _read_frames(capture, max_frames)
        for chunk in Progress(_chunks(frames, batch_size), total=_ceil_div(total, batch_size), desc="video", unit="batch"):
            tensors = [_frame_tensor(f, trained) for f in chunk]
            probs = _probabilities(trained, torch.stack([trained.transform(t) for t in tensors]), device)
            for frame, p in zip(chunk, probs):
                pred = _top_labels(trained, p, topk, threshold, f"{source}#frame={len(preds)}")
                preds.append(pred)
                if out_dir is not None:
                    drawn = annotate(frame[..., ::-1], pred)[..., ::-1]  # BGR <-> RGB
                    if writer is None:
                        size = (drawn.shape[1], drawn.shape[0])
                        path = out_dir / f"{name}_annotated.mp4"
                        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
                    writer.write(np.ascontiguousarray(drawn))
    except KeyboardInterrupt:
        get_logger().info(f"stopped after {len(preds)} frames")
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if not preds:
        raise DataError(f"{source}: no frames could be read")
    if verbose:
        get_logger().info(f"{len(preds)} frames; first: {_describe(preds[0])}")
    return preds


def _open_capture(source):
    """``cv2.VideoCapture`` without OpenCV's and FFmpeg's own console messages on failure
    ("moov atom not found", "can't open camera by index"): the caller raises one clear line.

    FFmpeg reads its level once, from ``OPENCV_FFMPEG_LOGLEVEL`` (8 = fatal only, unless the
    user set it); OpenCV's logger is quietened only while opening.
    """
    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "8")
    logging = cv2.utils.logging
    previous = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    try:
        return cv2.VideoCapture(source)
    finally:
        logging.setLogLevel(previous)


def _read_frames(capture, max_frames: int) -> Iterator[np.ndarray]:
    count = 0
    while not max_frames or count < max_frames:
        ok, frame = capture.read()
        if not ok:
            return
        count += 1
        yield frame


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _ceil_div(a: Optional[int], b: int) -> Optional[int]:
    return None if a is None else -(-a // b)


def _frame_tensor(bgr: np.ndarray, trained: Trained) -> torch.Tensor:
    """OpenCV BGR (H, W, 3) frame -> uint8 (C, H, W) in the model's colour mode."""
    rgb = torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).permute(2, 0, 1)
    if trained.in_chans == 1:
        from torchvision.transforms.v2.functional import rgb_to_grayscale

        return rgb_to_grayscale(rgb)
    return rgb


# ------------------------------------------------------------------------------- output


def _write_results(preds: list[Prediction], out_dir: Path) -> None:
    with (out_dir / "predictions.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["source", "rank", "label", "prob"])
        for pred in preds:
            for rank, (label, p) in enumerate(zip(pred.labels, pred.probs), start=1):
                writer.writerow([pred.source, rank, label, f"{p:.6f}"])
    (out_dir / "predictions.json").write_text(json.dumps([asdict(p) for p in preds], indent=1), encoding="utf-8")


__all__ = ["Prediction", "annotate", "predict", "resolve_source"]
