"""Model zoo: registry, shared layers and one module per architecture family.

Importing this package registers every family, so ``create_model("resnet18", num_classes=10)``
and ``list_models("vgg*")`` see the whole zoo.
"""

from cvpipe.models.registry import create_model, is_model, list_models, register_model

# Family modules register their builders on import.
from cvpipe.models import alexnet, googlenet, lenet, mobilenet, mobilenetv3, resnet, vgg, vit  # noqa: E402,F401  isort: skip
from cvpipe.models.base import Classifier, check_input_size  # noqa: E402

__all__ = ["Classifier", "check_input_size", "create_model", "is_model", "list_models", "register_model"]
