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

import torch
import torch.nn as nn


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
