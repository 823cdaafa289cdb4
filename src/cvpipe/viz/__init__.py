"""Plots shared by every part of cvpipe. All output is PNG written with matplotlib's Agg backend."""

from cvpipe.viz.figures import new_figure, save_figure
from cvpipe.viz.images import overlay_heatmap, save_image_grid, to_hwc_uint8

__all__ = ["new_figure", "overlay_heatmap", "save_figure", "save_image_grid", "to_hwc_uint8"]
