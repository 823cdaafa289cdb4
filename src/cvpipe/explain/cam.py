"""Class activation maps: CAM, Grad-CAM, Grad-CAM++, XGrad-CAM, Score-CAM, Eigen-CAM, Layer-CAM
and HiRes-CAM.

Every method produces the same thing, a map over the activations ``A`` (B, C, h, w) of a chosen
layer::

    L = ReLU( sum_k  w_k * A_k )

and the methods differ only in the weights ``w`` (:data:`WEIGHTINGS`):

========== ======================================================================== ==========
method     w (per channel (B, C, 1, 1) or per position (B, C, h, w))                 paper
========== ======================================================================== ==========
cam        classifier row of the target class (GAP + linear heads only)             Zhou 2016
gradcam    mean of dy/dA over positions                                             Selvaraju 2017
gradcam++  sum over positions of ReLU(dy/dA) * alpha, alpha from 2nd/3rd powers     Chattopadhay 2018
xgradcam   sum(dy/dA * A) / sum(A) over positions                                  Fu 2020
scorecam   softmax over channels of the target score of the input masked by A_k    Wang 2020
eigencam   first principal direction of the centred activations (class agnostic)    Muhammad 2020
layercam   ReLU(dy/dA) at every position                                            Jiang 2021
hirescam   dy/dA at every position                                                  Draelos 2020
========== ======================================================================== ==========

``y`` is the target class's logit. Each map is clamped at zero, min-max normalised per image,
upsampled to the input size (bilinear, half-pixel centres) and, for several layers, averaged
and normalised again: the conventions of the pytorch-grad-cam package, so maps agree with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from cvpipe.errors import ConfigError
from cvpipe.explain.hooks import LayerCapture, LayerSpec, eval_mode, find_patch_size, resolve_layers, to_spatial

Target = Union[int, str, Sequence[Union[int, str]], torch.Tensor, None]
EPS = 1e-7


@dataclass
class LayerState:
    """What a weighting sees for one layer of one batch."""

    name: str
    activations: torch.Tensor  # (B, C, h, w)
    gradients: Optional[torch.Tensor]  # (B, C, h, w): d(target logit)/dA, None if not needed
    model: nn.Module
    inputs: torch.Tensor  # (B, C_in, H, W) the model input
    targets: torch.Tensor  # (B,) class indices
    logits: torch.Tensor  # (B, K)
    batch_size: int = 32  # Score-CAM forward passes per chunk


@dataclass
class CamResult:
    """Maps for one batch. ``maps`` are in [0, 1] at the input resolution."""

    maps: torch.Tensor  # (B, H, W) float32
    targets: torch.Tensor  # (B,) explained class indices
    probs: torch.Tensor  # (B,) softmax probability of each target
    logits: torch.Tensor  # (B, K)
    method: str
    layers: list[str]
    layer_maps: dict[str, torch.Tensor] = field(default_factory=dict)  # (B, h, w) before normalising


# --------------------------------------------------------------------------- the weightings
# Each returns (weights, activations_to_weigh); the map is (weights * activations).sum(1).


def _cam_weights(s: LayerState):
    fc = _linear_head(s.model, s.name, s.activations, s.logits)
    return fc.weight.detach()[s.targets][:, :, None, None].to(s.activations.dtype), s.activations


def _gradcam_weights(s: LayerState):
    return s.gradients.mean(dim=(2, 3), keepdim=True), s.activations


def _gradcam_pp_weights(s: LayerState):
    # Eq. 19 of Chattopadhay et al. with exp(score) folded in: alpha = g^2 / (2 g^2 + sum(A) g^3).
    g, a = s.gradients, s.activations
    g2 = g.pow(2)
    alpha = g2 / (2 * g2 + a.sum(dim=(2, 3), keepdim=True) * g2 * g + 1e-6)
    alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
    return (F.relu(g) * alpha).sum(dim=(2, 3), keepdim=True), a


def _xgradcam_weights(s: LayerState):
    g, a = s.gradients, s.activations
    return (g * a).sum(dim=(2, 3), keepdim=True) / (a.sum(dim=(2, 3), keepdim=True) + EPS), a


def _layercam_weights(s: LayerState):
    return F.relu(s.gradients), s.activations


def _hirescam_weights(s: LayerState):
    return s.gradients, s.activations


def _eigencam_weights(s: LayerState):
    a = s.activations
    b, c, h, w = a.shape
    centred = a - a.mean(dim=(2, 3), keepdim=True)  # centre each channel over positions
    rows = centred.flatten(2).transpose(1, 2)  # (B, hw, C)
    rows = torch.nan_to_num(rows.float())
    _, _, vh = torch.linalg.svd(rows, full_matrices=False)
    direction = vh[:, 0, :]  # (B, C) first principal direction
    # An SVD direction has no sign; pick the one whose projection rises where the layer fires.
    projection = torch.einsum("bnc,bc->bn", rows, direction)
    energy = a.float().flatten(2).sum(1)  # (B, hw) channel sum per position
    agreement = (projection * (energy - energy.mean(1, keepdim=True))).sum(1)
    direction = direction * torch.where(agreement < 0, -1.0, 1.0)[:, None]
    return direction[:, :, None, None].to(a.dtype), centred


@torch.no_grad()
def _scorecam_weights(s: LayerState):
    a = s.activations
    b, c = a.shape[:2]
    size = s.inputs.shape[-2:]
    masks = F.interpolate(a, size=size, mode="bilinear", align_corners=True)  # (B, C, H, W)
    low = masks.flatten(2).min(-1).values[:, :, None, None]
    high = masks.flatten(2).max(-1).values[:, :, None, None]
    masks = (masks - low) / (high - low + 1e-8)
    scores = torch.empty(b, c, device=a.device)
    for i in range(b):
        for start in range(0, c, s.batch_size):
            chunk = masks[i, start : start + s.batch_size, None] * s.inputs[i][None]  # (n, C_in, H, W)
            scores[i, start : start + chunk.shape[0]] = s.model(chunk)[:, s.targets[i]].float()
    return scores.softmax(dim=1)[:, :, None, None].to(a.dtype), a


WEIGHTINGS: dict[str, Callable[[LayerState], tuple[torch.Tensor, torch.Tensor]]] = {
    "cam": _cam_weights,
    "gradcam": _gradcam_weights,
    "gradcam++": _gradcam_pp_weights,
    "xgradcam": _xgradcam_weights,
    "scorecam": _scorecam_weights,
    "eigencam": _eigencam_weights,
    "layercam": _layercam_weights,
    "hirescam": _hirescam_weights,
}
METHODS = tuple(WEIGHTINGS)
USES_GRADIENTS = {"gradcam", "gradcam++", "xgradcam", "layercam", "hirescam"}


def canonical_method(name: str) -> str:
    """'Grad-CAM++', 'gradcam_pp', 'GradCAMPlusPlus' -> 'gradcam++'; unknown names raise ConfigError."""
    key = re.sub(r"[\s_\-]", "", str(name).lower())
    key = key.replace("plusplus", "++").replace("pp", "++")
    if key not in WEIGHTINGS:
        raise ConfigError(f"unknown CAM method {name!r}; choose one of {', '.join(METHODS)}")
    return key


# --------------------------------------------------------------------------- the driver


def compute_cam(
    model: nn.Module,
    inputs: torch.Tensor,
    method: str = "gradcam",
    layers: LayerSpec = None,
    target: Target = None,
    class_names: Optional[Sequence[str]] = None,
    reshape: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    batch_size: int = 32,
) -> CamResult:
    """Class activation maps for a batch.

    inputs: (B, C, H, W) float, already normalised for the model.
    method: one of :data:`METHODS` (aliases like ``Grad-CAM++`` accepted).
    layers: dotted module name(s); None uses ``model.default_cam_layer``. Several are averaged.
    target: None for each image's top class, a class index or name for all, or one per image.
    reshape: maps a layer output to (B, C, h, w); by default 4-D outputs pass through and
        transformer tokens (B, N, D) are laid on the patch grid of this input size.
    batch_size: masked images per forward pass (Score-CAM only).
    Returns a :class:`CamResult`; the model's hooks, mode and gradients are left as they were.
    """
    method = canonical_method(method)
    if inputs.ndim != 4:
        raise ValueError(f"inputs must be (B, C, H, W), got shape {tuple(inputs.shape)}")
    named = resolve_layers(model, layers)
    input_hw = (int(inputs.shape[-2]), int(inputs.shape[-1]))
    patch = find_patch_size(model) if reshape is None else None
    custom_reshape = reshape

    def spatial(t: torch.Tensor, name: str) -> torch.Tensor:
        return custom_reshape(t) if custom_reshape is not None else to_spatial(t, input_hw, patch, name)

    device = next(iter(model.parameters()), inputs).device
    x = inputs.detach().to(device)
    needs_grad = method in USES_GRADIENTS
    with eval_mode(model):
        with LayerCapture(model, named, detach=not needs_grad) as capture, torch.set_grad_enabled(needs_grad):
            if needs_grad:
                # Makes the graph exist even when every parameter is frozen.
                x = x.clone().requires_grad_(True)
            logits = model(x)
            if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
                raise ConfigError(f"{type(model).__name__} must return (B, num_classes) logits for CAM")
            targets = resolve_targets(target, logits.detach(), class_names)
            missing = [n for n in named if n not in capture.outputs]
            if missing:
                raise ConfigError(f"layer {missing[0]!r} did not run in the forward pass; pick another layer")
            names = list(named)
            outputs = [capture.outputs[n] for n in names]
            grads: list[Optional[torch.Tensor]] = [None] * len(names)
            if needs_grad:
                score = logits.gather(1, targets[:, None]).sum()
                grads = list(torch.autograd.grad(score, outputs, allow_unused=True))
                for n, g in zip(names, grads):
                    if g is None:
                        raise ConfigError(f"layer {n!r} does not influence the logits; pick another layer")
            activations = [spatial(o.detach(), n) for n, o in zip(names, outputs)]
            grads = [spatial(g, n) if g is not None else None for n, g in zip(names, grads)]
            for n, a in zip(names, activations):
                if a.shape[-2] * a.shape[-1] == 1:
                    # Min-max normalising a single value gives 0: a blank overlay, not an explanation.
                    size = "x".join(map(str, input_hw))
                    raise ConfigError(
                        f"layer {n!r} gives a 1x1 map for a {size} input, so its CAM is a single value "
                        "(a blank overlay); pick an earlier layer with layer=NAME (`cvpipe features "
                        "CHECKPOINT --list` shows each layer's size) or train at a larger image size"
                    )
            logits = logits.detach()
            del outputs, x
        model_inputs = inputs.detach().to(device)  # Score-CAM masks these
        per_layer = {}
        for name, acts, grad in zip(named, activations, grads):
            state = LayerState(name, acts, grad, model, model_inputs, targets, logits, batch_size)
            weights, weighed = WEIGHTINGS[method](state)
            per_layer[name] = F.relu((weights * weighed).sum(dim=1))  # (B, h, w)
    maps = combine_layer_maps(list(per_layer.values()), input_hw)
    return CamResult(
        maps=maps.float().cpu(),
        targets=targets.cpu(),
        probs=logits.float().softmax(1).gather(1, targets[:, None])[:, 0].cpu(),
        logits=logits.float().cpu(),
        method=method,
        layers=list(named),
        layer_maps={k: v.float().cpu() for k, v in per_layer.items()},
    )


def normalize_maps(maps: torch.Tensor) -> torch.Tensor:
    """(B, h, w) -> min-max scaled to [0, 1] per map (a constant map becomes 0)."""
    flat = maps.flatten(1)
    low = flat.min(1).values[:, None, None]
    shifted = maps - low
    return shifted / (shifted.flatten(1).max(1).values[:, None, None] + EPS)


def combine_layer_maps(maps: Sequence[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
    """Per-layer (B, h_i, w_i) maps -> one (B, H, W) map in [0, 1].

    Each map is normalised at its own resolution, upsampled bilinearly (half-pixel centres, as
    OpenCV's ``resize``), averaged over layers and normalised again.
    """
    up = [
        F.interpolate(normalize_maps(m.float())[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
        for m in maps
    ]
    return normalize_maps(F.relu(torch.stack(up).mean(0)))


def resolve_targets(target: Target, logits: torch.Tensor, class_names: Optional[Sequence[str]] = None) -> torch.Tensor:
    """Target spec -> (B,) class indices. None means each image's top class."""
    b, k = logits.shape
    if target is None:
        return logits.argmax(1)
    if isinstance(target, torch.Tensor):
        items = target.reshape(-1).tolist()
    elif isinstance(target, (list, tuple)):
        items = list(target)
    else:
        items = [target]
    indices = [_class_index(t, k, class_names) for t in items]
    if len(indices) == 1:
        indices = indices * b
    if len(indices) != b:
        raise ConfigError(f"got {len(indices)} targets for {b} images; give one target or one per image")
    return torch.tensor(indices, dtype=torch.long, device=logits.device)


def _class_index(item, num_classes: int, class_names: Optional[Sequence[str]]) -> int:
    if isinstance(item, str) and class_names is not None and item in class_names:
        return list(class_names).index(item)
    try:
        index = int(item)
    except (TypeError, ValueError):
        known = f"; classes: {', '.join(map(str, class_names[:20]))}" if class_names else ""
        raise ConfigError(f"target {item!r} is not a class index or name{known}") from None
    if not 0 <= index < num_classes:
        raise ConfigError(f"target {index} is out of range for {num_classes} classes")
    return index


def _linear_head(model: nn.Module, layer: str, activations: torch.Tensor, logits: torch.Tensor) -> nn.Linear:
    """The linear classifier that sits right after global average pooling of ``layer``.

    CAM is defined only for ``logits = W @ GAP(A) + b``. We take the last ``nn.Linear`` whose
    input width is the layer's channel count and check that identity on this very batch.
    """
    channels = activations.shape[1]
    candidates = [m for m in model.modules() if isinstance(m, nn.Linear) and m.in_features == channels]
    if candidates:
        fc = candidates[-1]
        pooled = activations.float().mean(dim=(2, 3))
        rebuilt = F.linear(pooled, fc.weight.float(), None if fc.bias is None else fc.bias.float())
        if rebuilt.shape == logits.shape and torch.allclose(rebuilt, logits.float(), rtol=1e-3, atol=1e-3 * (1 + logits.abs().max().item())):
            return fc
    raise ConfigError(
        f"method=cam needs logits = linear(global-average-pool({layer})); this model's head is different, "
        "so use method=gradcam (identical to CAM on such heads) or another method"
    )
