"""Export a trained classifier for deployment: ONNX, TorchScript or a torch.export program,
checked against PyTorch.

    result = cvpipe.export("runs/train/exp/weights/best.pt", format="onnx")
    print(result.path, result.max_abs_diff)

The exported network takes what the PyTorch model takes: a float batch (N, C, H, W),
already resized and normalised as ``preprocess`` says, and returns logits (N, classes); for a
multi-label model apply a sigmoid, otherwise a softmax. The class names and the preprocessing
travel inside the file (ONNX ``metadata_props``; for TorchScript and ``.pt2`` the extra file
``cvpipe.json``) so a deployment needs nothing else. The batch size stays free (``dynamic=True``) unless asked
otherwise; the image size is the one the model was trained at.

After writing, the file is loaded back (ONNX Runtime when installed, else only the ONNX
checker; ``torch.jit.load`` / ``torch.export.load`` otherwise) and run on a random batch of
another size than the one traced, and the largest difference from PyTorch is reported.

An exported ONNX file is also a model ``cvpipe eval`` and ``cvpipe predict`` take in place of
the checkpoint (run by ONNX Runtime; :func:`load_onnx`), to check the deployed network on real
data; CAM and feature maps need the PyTorch checkpoint.
TorchScript is deprecated in PyTorch but still what libtorch (C++) loads; ``pt2`` is its
successor.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import logging
import os
import re
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import torch

from cvpipe.errors import CheckpointError, ConfigError, CvpipeError
from cvpipe.tasks.common import Trained, load_trained
from cvpipe.utils import sibling_temp_file

FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript", "pt2": ".pt2"}
MISMATCH_TOLERANCE = 1e-3  # max |exported - PyTorch| on logits above which export fails
OLDEST_OPSET = 18  # torch.onnx's exporter writes no older opset (it falls back to 18 and logs a traceback)


class ExportError(CvpipeError):
    """The exporter could not write the model, or the written model disagrees with PyTorch."""


@dataclass
class ExportResult:
    path: Path
    format: str
    input_shape: tuple[int, ...]  # the traced (N, C, H, W); N is free when dynamic
    dynamic: bool
    max_abs_diff: Optional[float]  # exported vs PyTorch on a random batch; None when not checked
    checked_with: str  # "onnxruntime", "onnx checker", "torch.jit", "torch.export" or "" (not checked)
    seconds: float

    def describe(self) -> str:
        shape = "x".join(("N" if self.dynamic else str(self.input_shape[0]), *map(str, self.input_shape[1:])))
        if self.max_abs_diff is not None:
            check = f"; max |difference| from PyTorch {self.max_abs_diff:.2e} ({self.checked_with})"
        elif self.checked_with:
            check = f"; checked with the {self.checked_with} (install onnxruntime to compare outputs)"
        else:
            check = ""
        return f"exported {self.format} to {self.path} (input {shape}) in {self.seconds:.1f}s{check}"


def export(
    checkpoint: Union[str, Path],
    format: str = "onnx",
    out: Optional[Union[str, Path]] = None,
    batch: int = 1,
    dynamic: bool = True,
    opset: Optional[int] = None,
    verify: bool = True,
) -> ExportResult:
    """Write the checkpoint's model as ``format`` to ``out`` (default: beside the checkpoint,
    same stem) and, with ``verify``, compare the written model with PyTorch.

    The file appears only when complete (written aside, then renamed), so a failed export
    leaves an earlier one in place. Raises :class:`ConfigError` for a bad option and
    :class:`ExportError` when the exporter fails or the outputs disagree.
    """
    start = time.perf_counter()
    if format not in FORMATS:
        raise ConfigError(f"format={format!r}: use {' or '.join(FORMATS)}")
    if batch < 1:
        raise ConfigError(f"batch={batch}: must be at least 1")
    if opset is not None:
        _check_opset(opset, format)
    trained = load_trained(checkpoint)
    if isinstance(trained.model, OnnxClassifier):
        raise ConfigError(f"{trained.path}: already exported; export from the PyTorch checkpoint it came from (e.g. best.pt)")
    out = Path(out) if out is not None else trained.path.with_suffix(FORMATS[format])
    if not out.suffix and not out.exists():  # eval and predict recognise an ONNX file by its suffix
        out = out.with_suffix(FORMATS[format])
    if out.resolve() == trained.path.resolve():
        raise ConfigError(f"out={out}: that is the checkpoint itself; choose another file name")
    if out.is_dir():
        raise ConfigError(f"out={out}: is a folder; give a file name ending in {FORMATS[format]}")
    if out.exists() and not out.is_file():  # a device or pipe would be replaced by the export
        raise ConfigError(f"out={out}: is not a regular file; give a file name ending in {FORMATS[format]}")
    height, width = trained.preprocess["image_size"]
    # a batch of 1 would be fixed by the tracers (size-1 dimensions are specialised), so a free
    # batch is traced at 2 or more
    traced = max(batch, 2) if dynamic else batch
    example = torch.randn(traced, trained.in_chans, height, width, generator=torch.Generator().manual_seed(0))
    metadata = _metadata(trained)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = sibling_temp_file(out)
    except OSError as e:
        raise ExportError(f"out={out}: cannot write in {out.parent} ({e.strerror or e}); choose another folder") from None
    try:
        WRITERS[format](trained.model, example, partial, metadata, dynamic, opset)
        diff, checked_with = _compare(format, partial, trained.model, example, dynamic) if verify else (None, "")
        if diff is not None and diff > MISMATCH_TOLERANCE:
            raise ExportError(
                f"{out.name}: the exported model's logits differ from PyTorch's by up to {diff:.3g} "
                f"(more than {MISMATCH_TOLERANCE}); nothing was written. Report the model name, please"
            )
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return ExportResult(out, format, tuple(example.shape), dynamic, diff, checked_with, time.perf_counter() - start)


def _metadata(trained: Trained) -> dict[str, str]:
    """What a deployment needs besides the network, as strings (ONNX metadata is str -> str)."""
    from cvpipe import __version__
    from cvpipe.config import to_dict

    return {
        "cvpipe_version": __version__,
        "config": json.dumps(to_dict(trained.config)),
        "model": trained.config.model.name,
        "classes": json.dumps(trained.classes),
        "multi_label": json.dumps(trained.multi_label),
        "threshold": json.dumps(trained.config.data.threshold),
        "preprocess": json.dumps(trained.preprocess),
        "data": json.dumps(trained.data_fingerprint),  # lets eval of the export notice changed data
        "input": "float32 (N, C, H, W), resized and normalised as 'preprocess' says",
        "output": "logits (N, classes): sigmoid for multi-label, else softmax",
    }


@contextlib.contextmanager
def _quiet():
    """The exporters print progress lines, warnings and logged tracebacks a user cannot act on;
    errors still raise."""
    disabled = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(disabled)


def _check_opset(opset: int, format: str) -> None:
    """ConfigError for an opset the ONNX exporter would not write (it would fall back to its own)."""
    if format != "onnx":
        raise ConfigError(f"opset={opset}: only format=onnx has an opset; leave it out")
    with contextlib.suppress(ImportError):  # without onnx the writer says what to install
        import onnx

        newest = onnx.defs.onnx_opset_version()
        if not OLDEST_OPSET <= opset <= newest:
            raise ConfigError(f"opset={opset}: the ONNX exporter writes opsets {OLDEST_OPSET} to {newest}; leave opset out for its default")


def _write_onnx(model, example, path: Path, metadata: dict, dynamic: bool, opset: Optional[int]) -> None:
    try:
        import onnx
        import onnxscript  # noqa: F401  (the exporter needs it; say so before it fails deep inside)
    except ImportError as e:
        raise ExportError(f"ONNX export needs the onnx and onnxscript packages ({e.name} is missing): pip install 'cvpipe[export]'") from None
    options = {"input_names": ["images"], "output_names": ["logits"], "dynamo": True, "external_data": False}
    if dynamic:
        options["dynamic_shapes"] = _batch_free()
    if opset is not None:
        options["opset_version"] = opset
    try:
        with _quiet(), torch.no_grad():
            torch.onnx.export(model, (example,), str(path), **options)
    except Exception as e:  # the exporter raises many types; the first line says what failed
        raise ExportError(f"ONNX export of {type(model).__name__} failed: {_first_line(e)}") from None
    proto = onnx.load(str(path))
    written = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and written != opset:  # the exporter keeps its own opset when conversion fails
        raise ExportError(f"opset={opset}: the exporter could not convert {type(model).__name__} to it (it wrote opset {written}); "
                          f"use opset={written} or leave opset out")
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))


def _write_torchscript(model, example, path: Path, metadata: dict, dynamic: bool, opset: Optional[int]) -> None:
    """Traced: the batch size stays free as long as the model never reads it as a number."""
    try:
        with _quiet(), torch.no_grad():
            traced = torch.jit.trace(model, example, check_trace=False)  # checked below on another batch size
            torch.jit.save(traced, str(path), _extra_files={"cvpipe.json": json.dumps(metadata)})
    except Exception as e:
        raise ExportError(f"TorchScript export of {type(model).__name__} failed: {_first_line(e)}") from None


def _write_pt2(model, example, path: Path, metadata: dict, dynamic: bool, opset: Optional[int]) -> None:
    try:
        with _quiet(), torch.no_grad():
            program = torch.export.export(model, (example,), dynamic_shapes=_batch_free() if dynamic else None)
            torch.export.save(program, str(path), extra_files={"cvpipe.json": json.dumps(metadata)})
    except Exception as e:
        raise ExportError(f"torch.export of {type(model).__name__} failed: {_first_line(e)}") from None


WRITERS = {"onnx": _write_onnx, "torchscript": _write_torchscript, "pt2": _write_pt2}


def _batch_free() -> tuple[dict, ...]:
    """torch.export's spec for one input whose first dimension (the batch) may vary."""
    return ({0: torch.export.Dim("batch", min=1, max=65536)},)


def _compare(format: str, path: Path, model, example: torch.Tensor, dynamic: bool) -> tuple[Optional[float], str]:
    """Largest |exported - PyTorch| over the logits of a random batch (another batch size than
    the traced one when that is free), and what ran the exported file."""
    size = example.shape[0] + 1 if dynamic else example.shape[0]
    x = torch.randn(size, *example.shape[1:], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x)
    try:
        with _quiet(), torch.no_grad():  # the loaders warn of deprecations a user cannot act on
            if format == "onnx":
                import onnx

                onnx.checker.check_model(str(path))
                if importlib.util.find_spec("onnxruntime") is None:
                    return None, "onnx checker"
                run, runner = OnnxClassifier(path, expected.shape[1]), "onnxruntime"
            elif format == "torchscript":
                run, runner = torch.jit.load(str(path)), "torch.jit"
            else:
                run, runner = torch.export.load(str(path)).module(), "torch.export"
            got = run(x)
    except Exception as e:
        hint = "; try dynamic=false (a fixed batch size)" if dynamic else ""
        raise ExportError(f"the exported model does not run on a batch of {size}: {_first_line(e)}{hint}") from None
    return (got - expected).abs().max().item(), runner


class OnnxClassifier(torch.nn.Module):
    """An exported ONNX classifier run by ONNX Runtime, called like the PyTorch model:
    float (N, C, H, W) -> logits (N, classes), on the input's device.

    A model exported with a fixed batch size B is run in chunks of B, the last one padded with
    zeros (whose outputs are dropped), so callers may use any batch size. No parameters and no
    layers: there is nothing to hook for CAM or feature maps.
    """

    def __init__(self, path: Path, num_classes: int):
        super().__init__()
        try:
            import onnxruntime
        except ImportError:
            raise ExportError(f"{path}: running an ONNX model needs onnxruntime: pip install 'cvpipe[export]'") from None
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:
            raise CheckpointError(f"{path}: ONNX Runtime cannot load it ({_first_line(e)})") from None
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.fixed_batch = first.shape[0] if isinstance(first.shape[0], int) else None
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = self.fixed_batch or max(1, x.shape[0])
        outputs = []
        for chunk in x.detach().float().cpu().split(batch):
            real = chunk.shape[0]
            if real < batch:
                chunk = torch.cat([chunk, chunk.new_zeros(batch - real, *chunk.shape[1:])])
            (logits,) = self.session.run(None, {self.input_name: chunk.contiguous().numpy()})
            outputs.append(torch.from_numpy(logits[:real]))
        out = torch.cat(outputs) if outputs else torch.zeros(0, self.num_classes)
        return out.to(x.device)


def load_onnx(path: Path) -> Trained:
    """A :class:`Trained` whose model is the exported ONNX file, with the classes, config and
    preprocessing ``cvpipe export`` stored in it."""
    from cvpipe.config import Config, from_dict
    from cvpipe.data.transforms import build_eval_transform

    try:
        import onnx

        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except ImportError:
        raise ExportError(f"{path}: reading an ONNX model needs the onnx package: pip install 'cvpipe[export]'") from None
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable ONNX file ({_first_line(e)})") from None
    missing = [k for k in ("config", "classes", "preprocess", "multi_label") if k not in meta]
    if missing:
        raise CheckpointError(f"{path}: an ONNX model without cvpipe's metadata ({', '.join(missing)}); export it with `cvpipe export`")
    classes, preprocess = json.loads(meta["classes"]), json.loads(meta["preprocess"])
    return Trained(
        model=OnnxClassifier(path, len(classes)).eval(),
        classes=classes,
        preprocess=preprocess,
        config=from_dict(Config, json.loads(meta["config"])),
        multi_label=bool(json.loads(meta["multi_label"])),
        transform=build_eval_transform(preprocess),
        path=path,
        data_fingerprint=json.loads(meta.get("data", "null")),
    )


def _first_line(error: Exception) -> str:
    """The first line of the innermost cause: torch.onnx wraps the real reason in a generic
    'Failed to export the model with torch.export' with terminal colour codes."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    return text.splitlines()[0] if text else type(error).__name__
