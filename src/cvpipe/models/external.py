"""Models from outside the zoo: ``tv:<name>`` (any torchvision classifier) and ``timm:<name>``.

Both are wrapped so they follow cvpipe's model contract (``forward_features``,
``forward_head``, ``reset_classifier``, ``num_features``, ``default_cam_layer`` and the
stem/stage/head names fine-tuning reads). Weights are never downloaded: torchvision models
are built with ``weights=None``, timm models with ``pretrained=False``; load a local file
with ``model.pretrained=PATH`` (:func:`cvpipe.models.weights.load_pretrained`), which also
accepts the unwrapped model's own key names.
"""

from __future__ import annotations

import difflib
from typing import Optional

import torch
import torch.nn as nn

from cvpipe.errors import ConfigError
from cvpipe.models.base import Classifier


def check_external_name(name: str) -> tuple[str, str]:
    """``(source, arch)`` of ``tv:<arch>`` / ``timm:<arch>``, or a ConfigError saying what is
    wrong (no such prefix or architecture, timm not installed), without building anything."""
    source, _, arch = name.partition(":")
    if source not in ("tv", "timm"):
        raise ConfigError(f"model.name={name!r}: unknown prefix {source!r}; use tv: or timm:")
    if not arch:
        raise ConfigError(f"model.name={name!r}: give the architecture after the prefix, e.g. tv:resnet18")
    if source == "tv":
        import torchvision.models as tvm

        names = tvm.list_models(module=tvm)
        if arch not in names:
            raise _unknown(arch, names, "tv")
        return source, arch
    try:
        import timm
    except ImportError:
        raise ConfigError(f"model.name=timm:{arch} needs timm: pip install timm") from None
    if not timm.is_model(arch):
        raise _unknown(arch, timm.list_models(), "timm")
    return source, arch


def create_external(name: str, num_classes: int = 1000, in_chans: int = 3, **kwargs) -> Classifier:
    """Build ``tv:<name>`` or ``timm:<name>`` with random weights, wrapped in the cvpipe contract."""
    source, arch = check_external_name(name)
    builder = TorchvisionClassifier if source == "tv" else TimmClassifier
    return builder(arch, num_classes, in_chans, **kwargs)


def _unknown(arch: str, names: list[str], source: str) -> ConfigError:
    close = difflib.get_close_matches(arch, names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"model.name={source}:{arch}: {source} has no classification model {arch!r}{hint}")


def _bad_option(name: str, err: Exception, options: dict) -> Exception:
    from cvpipe.models.registry import option_error

    return option_error(name, err, options) or err


def _last_of_type(model: nn.Module, kind: type) -> Optional[str]:
    last = None
    for n, m in model.named_modules():
        if isinstance(m, kind):
            last = n
    return last


def _set_module(model: nn.Module, dotted: str, new: nn.Module) -> None:
    *path, leaf = dotted.split(".")
    parent = model
    for part in path:
        parent = getattr(parent, part)
    setattr(parent, leaf, new)


def _torchvision_cam_layer(net: nn.Module) -> str:
    """Where CAM and feature maps look in a torchvision classifier (a dotted name inside ``net``).

    CNNs: the top-level block that holds the last convolution of the main path (auxiliary
    classifiers such as GoogLeNet's ``aux2`` do not run in eval mode); the last block when that
    is a ``ModuleList`` (MaxViT), which is never called as a whole. Transformers: the last
    encoder block's first LayerNorm for ViT (the tokens, as for cvpipe's own ViT, not the patch
    projection that holds the only convolution), and Swin's ``permute``, the first (B, C, H, W)
    view of its channels-last (B, H, W, C) features.
    """
    import torchvision.models as tvm

    if isinstance(net, tvm.VisionTransformer):
        last = list(net.encoder.layers.named_children())[-1][0]
        return f"encoder.layers.{last}.ln_1"
    if isinstance(net, tvm.SwinTransformer):
        return "permute"
    last_conv = None
    for name, module in net.named_modules():
        if isinstance(module, nn.Conv2d) and not any(part.lower().startswith("aux") for part in name.split(".")):
            last_conv = name
    if last_conv is None:
        return ""
    top = last_conv.split(".")[0]
    block = getattr(net, top)
    return f"{top}.{len(block) - 1}" if isinstance(block, nn.ModuleList) else top


class TorchvisionClassifier(Classifier):
    """A torchvision classifier split at its last ``nn.Linear``.

    ``model`` is the torchvision network with that layer replaced by an identity, so it maps
    (B, C, H, W) to the pooled (B, num_features) vector; ``head`` is the layer itself.
    ``forward_features`` therefore returns pooled features (torchvision's forward pools
    inside); CAM uses :func:`_torchvision_cam_layer`.
    """

    def __init__(self, arch: str, num_classes: int = 1000, in_chans: int = 3, **kwargs):
        super().__init__()
        import torchvision.models as tvm

        check_external_name(f"tv:{arch}")
        try:
            net = tvm.get_model(arch, weights=None, num_classes=max(num_classes, 1), **kwargs)
        except (TypeError, ValueError) as e:
            raise _bad_option(f"tv:{arch}", e, kwargs) from None
        self.arch = arch
        if in_chans != 3:
            first = next(n for n, m in net.named_modules() if isinstance(m, nn.Conv2d))
            old = dict(net.named_modules())[first]
            _set_module(net, first, nn.Conv2d(in_chans, old.out_channels, old.kernel_size, old.stride,
                                              old.padding, old.dilation, old.groups, old.bias is not None))
        head_name = _last_of_type(net, nn.Linear)
        if head_name is None:
            raise ConfigError(f"model tv:{arch} has no linear classifier to adapt")
        head = dict(net.named_modules())[head_name]
        _set_module(net, head_name, nn.Identity())
        self.model = net
        self._tv_head_name = head_name
        self.num_features = head.in_features
        self.num_classes = num_classes
        self.head = head if num_classes > 0 else nn.Identity()
        top = [n for n, _ in net.named_children()]
        cam_layer = _torchvision_cam_layer(net)
        self.default_cam_layer = f"model.{cam_layer}" if cam_layer else ""
        self.stem_names = ()
        self.stage_names = tuple(f"model.{n}" for n in top)
        self.head_names = ("head",)

    def adapt_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Accept the plain torchvision keys (``fc.weight``) as well as the wrapped ones."""
        if any(k.startswith(("model.", "head.")) for k in state_dict):
            return state_dict
        out = {}
        for k, v in state_dict.items():
            if k.startswith(self._tv_head_name + "."):
                out["head." + k[len(self._tv_head_name) + 1:]] = v
            else:
                out["model." + k] = v
        return out

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out[0] if isinstance(out, tuple) else out

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor):
        out = self.model(x)
        if isinstance(out, tuple):  # GoogLeNet / Inception v3 in training: (main, aux...)
            return (self.head(out[0]), *out[1:]) if self.training else self.head(out[0])
        return self.head(out)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()


class _Permute(nn.Module):
    """``x.permute(*dims)`` as a module, so hooks can see the permuted tensor."""

    def __init__(self, *dims: int):
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)


def _timm_stem_and_stages(net: nn.Module, info: list[str], head: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """cvpipe part names of a timm model from its ``feature_info`` modules.

    Stages are the feature-info modules that hold parameters (timm's ResNet lists its stem
    activation ``act1`` first; a stage without weights would make ``freeze_stages=1`` freeze
    nothing and shift every later stage). The stem is every module (or direct parameter, such
    as a ViT's ``cls_token`` and ``pos_embed``) whose parameters come before the first stage's,
    so freezing the stem and layer-wise decay reach ``conv1``/``patch_embed`` too.
    """

    def under(name: str, prefix: str) -> bool:
        return name == prefix or name.startswith(prefix + ".")

    names = [n for n, _ in net.named_parameters()]
    stages = [m for m in info if any(under(n, m) for n in names)]
    stem: list[str] = []
    for n in names:
        if stages and under(n, stages[0]):
            break
        if not stages or (head and under(n, head)):
            continue
        owner = n.rsplit(".", 1)[0] if "." in n else n  # the module holding it, or the parameter itself
        if owner not in stem:
            stem.append(owner)
    return tuple(f"model.{m}" for m in stem), tuple(f"model.{m}" for m in stages)


class TimmClassifier(Classifier):
    """A timm model (which already has the contract's methods) with cvpipe's part names added."""

    def __init__(self, arch: str, num_classes: int = 1000, in_chans: int = 3, **kwargs):
        super().__init__()
        check_external_name(f"timm:{arch}")
        import timm

        try:
            net = timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs)
        except (TypeError, ValueError) as e:
            raise _bad_option(f"timm:{arch}", e, kwargs) from None
        self.model = net
        self.num_classes = num_classes
        self.num_features = int(getattr(net, "num_features", 0))
        cfg = getattr(net, "pretrained_cfg", {}) or {}
        head = cfg.get("classifier", "")
        head = head if isinstance(head, str) else head[0]
        info = [f["module"] for f in getattr(net, "feature_info", []) if f.get("module")]
        # Channels-last models (timm's Swin, MambaOut) end their features in (B, H, W, C); CAM and
        # feature maps read (B, C, H, W), so those features pass through ``to_nchw`` (the CAM
        # layer) and are turned back before timm's head: same maths, one view each way.
        self.to_nchw = _Permute(0, 3, 1, 2) if str(getattr(net, "output_fmt", "")) == "NHWC" else None
        self.default_cam_layer = "to_nchw" if self.to_nchw is not None else f"model.{info[-1]}" if info else ""
        self.stem_names, self.stage_names = _timm_stem_and_stages(net, info, head)
        self.head_names = (f"model.{head}",) if head else ()

    def adapt_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Accept timm's own keys as well as the wrapped ones."""
        if any(k.startswith("model.") for k in state_dict):
            return state_dict
        return {"model." + k: v for k, v in state_dict.items()}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        features = self.model.forward_features(x)
        return features if self.to_nchw is None else self.to_nchw(features)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.to_nchw is not None:
            x = x.permute(0, 2, 3, 1)  # back to timm's (B, H, W, C)
        return self.model.forward_head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) if self.to_nchw is None else self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.model.reset_classifier(num_classes)


__all__ = ["TimmClassifier", "TorchvisionClassifier", "create_external"]
