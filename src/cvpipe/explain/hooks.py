"""The one place where explanation code touches a model's hooks.

:class:`LayerCapture` registers forward hooks on named layers for the duration of a ``with``
block and always removes them on exit, even when the forward pass raises; the captured tensors
are dropped with the hooks, so nothing outlives a call (no hook or memory growth over thousands
of calls). Gradients are never accumulated into ``.grad``: callers take them with
``torch.autograd.grad`` on the captured outputs.

Also here: resolving a layer from a dotted name (or the model's ``default_cam_layer``), and
turning a transformer's token sequence back into a spatial map on the patch grid.
"""

from __future__ import annotations

import contextlib
import difflib
import math
from typing import Iterator, Optional, Sequence, Union

import torch
import torch.nn as nn

from cvpipe.errors import ConfigError

LayerSpec = Union[str, Sequence[str], None]


def resolve_layers(model: nn.Module, layers: LayerSpec = None) -> dict[str, nn.Module]:
    """Dotted names -> modules, in the order given.

    ``None`` (or an empty string) means the model's ``default_cam_layer``; a comma-separated
    string or a list names several layers. Unknown names raise :class:`ConfigError` with the
    closest valid names.
    """
    if layers is None or layers == "" or layers == []:
        default = getattr(model, "default_cam_layer", "")
        if not default:
            raise ConfigError(
                f"{type(model).__name__} has no default_cam_layer; name one with layer=NAME "
                "(list them with `cvpipe features CHECKPOINT --list`)"
            )
        layers = default
    names = [n.strip() for n in layers.split(",")] if isinstance(layers, str) else [str(n) for n in layers]
    modules = dict(model.named_modules())
    resolved = {}
    for name in names:
        if name not in modules or name == "":
            close = _closest_module_names(name, [n for n in modules if n])
            hint = f"; did you mean {', '.join(close)}?" if close else "; list them with `cvpipe features CHECKPOINT --list`"
            raise ConfigError(f"layer {name!r} is not a module of {type(model).__name__}{hint}")
        resolved[name] = modules[name]
    return resolved


def _closest_module_names(name: str, names: list[str]) -> list[str]:
    """Up to three module names the user probably meant: those that end in ``name`` as dotted
    parts (``act2`` -> ``features.act2``), else the most similar spellings."""
    tail = sorted((n for n in names if n.endswith("." + name)), key=lambda n: n.count("."))  # shallowest first
    return tail[:3] if tail else difflib.get_close_matches(name, names, n=3, cutoff=0.6)


def _first_tensor(output) -> Optional[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return None


class LayerCapture(contextlib.AbstractContextManager):
    """Capture the outputs of named layers during a forward pass.

    Usage::

        with LayerCapture(model, {"layer4": model.layer4}) as cap:
            logits = model(x)
            act = cap.outputs["layer4"]          # the tensor layer4 returned

    ``detach=False`` keeps the captured tensors in the autograd graph so gradients can be taken
    with ``torch.autograd.grad(score, list(cap.outputs.values()))``. In that mode the hook hands
    the rest of the network a copy of the output, so an in-place op that follows the layer (VGG's
    ``ReLU(inplace=True)``) cannot overwrite what was captured or its gradient.

    A layer called several times in one pass (a shared module) keeps its last output. Hooks and
    captured tensors are released on exit, whatever happens inside the block.
    """

    def __init__(self, model: nn.Module, layers: dict[str, nn.Module], detach: bool = True):
        self.model = model
        self.layers = dict(layers)
        self.detach = detach
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles: list = []

    def _hook(self, name: str):
        def hook(module, inputs, output):
            tensor = _first_tensor(output)
            if tensor is None:
                return None
            if self.detach:
                self.outputs[name] = tensor.detach()
                return None
            self.outputs[name] = tensor
            if not isinstance(output, torch.Tensor):
                return None
            # Downstream layers get a copy; in-place edits there leave the capture intact.
            return output.clone()

        return hook

    def __enter__(self) -> "LayerCapture":
        try:
            for name, module in self.layers.items():
                self._handles.append(module.register_forward_hook(self._hook(name)))
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.release()
        return None  # never swallow an exception

    def release(self) -> None:
        """Remove every hook and drop every captured tensor."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.outputs.clear()


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block and restore each module's own flag afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in flags:
            module.training = training


def find_patch_size(model: nn.Module) -> Optional[tuple[int, int]]:
    """The patch size of a vision transformer, or None for models without one.

    Looks for a ``patch_size`` attribute on the model or its ``patch_embed`` (torchvision, timm,
    cvpipe), then for the first convolution whose kernel equals its stride (the patch embedding).
    """
    for owner in (model, getattr(model, "patch_embed", None)):
        size = getattr(owner, "patch_size", None) if owner is not None else None
        if isinstance(size, int):
            return (size, size)
        if isinstance(size, (tuple, list)) and len(size) == 2:
            return (int(size[0]), int(size[1]))
    for module in model.modules():
        if isinstance(module, nn.Conv2d) and module.kernel_size == module.stride and module.stride[0] > 1:
            return (int(module.stride[0]), int(module.stride[1]))
    return None


def tokens_to_map(
    tokens: torch.Tensor, input_hw: tuple[int, int], patch_size: Optional[tuple[int, int]] = None, name: str = ""
) -> torch.Tensor:
    """Transformer tokens (B, N, D) -> spatial map (B, D, H/p, W/p) on the patch grid.

    The grid is (H // p, W // p) for the actual input size, so any resolution works. Leading
    tokens beyond the grid (class token, distillation or register tokens) are dropped. Without a
    known patch size the largest grid with the input's aspect ratio that fits N tokens is used.
    ``name`` (the layer's dotted name) goes into error messages.
    """
    what = f"layer {name!r}" if name else "layer output"
    b, n, d = tokens.shape
    height, width = input_hw
    if patch_size is not None:
        gh, gw = height // patch_size[0], width // patch_size[1]
    else:
        gh = gw = 0
        for extra in range(0, min(n, 16)):
            cells = n - extra
            # (height / p) * (width / p) = cells  ->  p = sqrt(height * width / cells)
            p = math.sqrt(height * width / cells)
            if abs(p - round(p)) < 1e-6 and round(p) > 0 and height % round(p) == 0 and width % round(p) == 0:
                gh, gw = height // round(p), width // round(p)
                break
        if gh * gw == 0:
            raise ConfigError(
                f"{what}: cannot lay {n} tokens on a patch grid for a {height}x{width} input; "
                "pick a layer with a spatial (B, C, H, W) output"
            )
    extra = n - gh * gw
    if extra < 0:
        raise ConfigError(
            f"{what} has {n} tokens but a {height}x{width} input makes a {gh}x{gw} patch grid; "
            "pick a layer inside the transformer blocks"
        )
    grid = tokens[:, extra:, :]
    return grid.transpose(1, 2).reshape(b, d, gh, gw)


def to_spatial(
    tensor: torch.Tensor, input_hw: tuple[int, int], patch_size: Optional[tuple[int, int]] = None, name: str = ""
) -> torch.Tensor:
    """A layer output as (B, C, h, w): CNN maps pass through, transformer tokens are re-gridded.

    ``name`` (the layer's dotted name) goes into error messages."""
    if tensor.ndim == 4:
        return tensor
    if tensor.ndim == 3:
        return tokens_to_map(tensor, input_hw, patch_size, name)
    what = f"layer {name!r}" if name else "layer output"
    raise ConfigError(
        f"{what} has shape {tuple(tensor.shape)}; CAM and feature maps need (B, C, H, W) maps "
        "or (B, N, D) tokens, so pick an earlier layer"
    )

