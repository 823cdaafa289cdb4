"""Explaining models: the CAM family, its faithfulness, and feature maps.

- :func:`compute_cam` - class activation maps by any of :data:`METHODS` for a batch.
- :func:`road_score`, :func:`compare_methods` - ROAD faithfulness (remove relevant pixels).
- :func:`save_cam_outputs`, :func:`save_cam_grid`, :func:`cam_gallery` - overlay PNGs, ``.npy``.
- :func:`capture_features`, :func:`list_layers`, :func:`save_feature_grid` - feature maps.
- :func:`explain_images`, :func:`save_feature_maps` - what ``cvpipe cam`` / ``features`` run.
- :class:`LayerCapture` - the hook context manager everything above goes through.
"""

from cvpipe.explain.api import CamReport, explain_images, save_feature_maps
from cvpipe.explain.cam import METHODS, CamResult, canonical_method, compute_cam, resolve_targets
from cvpipe.explain.faithfulness import Faithfulness, compare_methods, impute_linear, road_score
from cvpipe.explain.features import capture_features, channel_energy, list_layers, save_feature_grid
from cvpipe.explain.hooks import LayerCapture, resolve_layers, tokens_to_map
from cvpipe.explain.render import cam_gallery, display_images, overlays, save_cam_grid, save_cam_outputs

__all__ = [
    "METHODS",
    "CamReport",
    "CamResult",
    "Faithfulness",
    "LayerCapture",
    "cam_gallery",
    "canonical_method",
    "capture_features",
    "channel_energy",
    "compare_methods",
    "compute_cam",
    "display_images",
    "explain_images",
    "impute_linear",
    "list_layers",
    "overlays",
    "resolve_layers",
    "resolve_targets",
    "road_score",
    "save_cam_grid",
    "save_cam_outputs",
    "save_feature_maps",
    "save_feature_grid",
    "tokens_to_map",
]
