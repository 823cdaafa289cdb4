"""The contract every cvpipe classifier follows, so the rest of cvpipe needs no special cases.

- ``forward_features(x)``: (B, C, H, W) image batch -> unpooled features, (B, C', H', W') for
  CNNs or (B, N, D) tokens for transformers.
- ``forward_head(x, pre_logits=False)``: features -> (B, num_classes) logits, or the pooled
  (B, num_features) vector when ``pre_logits``.
- ``reset_classifier(num_classes)``: replace the head (0 gives an identity head).
- ``num_features``: width of the pooled vector the head sees.
- ``default_cam_layer``: dotted module name whose output CAM methods and feature maps use.
- ``stem_names``, ``stage_names``, ``head_names``: dotted module-name prefixes that say what
  "stem", "stage i" and "head" mean for this architecture. Fine-tuning (freeze by stage,
  freeze the backbone, per-group and layer-wise learning rates) reads only these, so it needs
  no special case per family. Everything outside the head is the backbone. A stage entry may
  be a tuple of prefixes when one stage spans several modules.

In training mode a model with auxiliary classifiers (GoogLeNet) returns a tuple
``(logits, aux1, aux2, ...)``; in eval mode every model returns logits only.
"""

from __future__ import annotations

import abc
from typing import Sequence

import torch
import torch.nn as nn

from cvpipe.errors import ConfigError, CvpipeError


class Classifier(nn.Module, abc.ABC):
    """Base class holding the shared ``forward``; subclasses implement the three methods."""

    num_classes: int
    num_features: int
    default_cam_layer: str = ""
    stem_names: tuple[str, ...] = ()
    stage_names: tuple = ()  # each entry: a prefix, or a tuple of prefixes
    head_names: tuple[str, ...] = ()

    @abc.abstractmethod
    def forward_features(self, x: torch.Tensor) -> torch.Tensor: ...

    @abc.abstractmethod
    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor: ...

    @abc.abstractmethod
    def reset_classifier(self, num_classes: int) -> None: ...

    def adapt_state_dict(self, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Translate a foreign checkpoint layout to this model's (default: unchanged).

        ``cvpipe.models.weights.load_pretrained`` calls it before matching keys; ViT uses it
        for timm key names and position embeddings learnt at another resolution.
        """
        return state_dict

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class FeaturesClassifier(Classifier):
    """AlexNet and VGG: ``features`` -> ``avgpool`` -> a 7-module ``classifier``
    (dropout/FC/ReLU twice, then the last FC), laid out as torchvision does so weights load.

    Subclasses build ``features``, ``avgpool`` and ``classifier`` and set ``num_features``.
    Initialisation follows the notes: He-normal convolutions (fan-out), N(0, 0.01) linears,
    zero biases.
    """

    def _make_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        x = self.classifier[:6](x)
        return x if pre_logits else self.classifier[6](x)

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.classifier[6] = self._make_head(num_classes)


def check_input_size(
    model: nn.Module, input_shape: Sequence[int], setting: str = "the image size", name: str = ""
) -> None:
    """Raise :class:`ConfigError` when ``model`` cannot run on a (B, C, H, W) ``input_shape``.

    Typical causes: an image too small for the network's pooling (VGG at 16 px), a model built
    for one fixed size (torchvision's ViT), the wrong number of channels. The forward pass runs
    first on ``meta`` tensors (shapes only: no memory, no arithmetic, the weights untouched);
    only if that fails (also when an op has no meta kernel or reads tensor values) a real
    batch-of-one forward without gradients decides, so the check never rejects a model that runs.
    ``setting`` names what the user should change (e.g. ``data.augment.image_size``), ``name``
    the model in the message (default: its class name).
    """
    shape = (1, *map(int, input_shape[1:]))
    flags = [(m, m.training) for m in model.modules()]
    model.eval()  # train-mode BatchNorm would reject a 1x1 map at batch 1; auxiliary heads stay off
    try:
        with torch.no_grad():
            try:
                meta = {name: torch.empty_like(t, device="meta") for name, t in
                        [*model.named_parameters(), *model.named_buffers()]}
                torch.func.functional_call(model, meta, (torch.empty(shape, device="meta"),))
                return
            except CvpipeError:
                raise
            except Exception:  # noqa: BLE001 - confirmed or dismissed by the real forward below
                pass
            reference = next(iter(model.parameters()), torch.empty(0))
            try:
                model(torch.zeros(shape, device=reference.device, dtype=reference.dtype if reference.is_floating_point() else None))
            except (RuntimeError, AssertionError, ValueError, IndexError) as e:
                reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
                size = "x".join(map(str, shape[1:]))
                raise ConfigError(f"{name or type(model).__name__} cannot run on a {size} (CxHxW) input ({reason}); "
                                  f"change {setting}") from e
    finally:
        for module, training in flags:
            module.training = training
