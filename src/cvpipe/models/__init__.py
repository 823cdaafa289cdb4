"""Model zoo: registry, shared layers and one module per architecture family."""

from cvpipe.models.registry import create_model, is_model, list_models, register_model

__all__ = ["create_model", "is_model", "list_models", "register_model"]
