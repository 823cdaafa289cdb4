"""Model analysis: parameters, MACs/FLOPs at the dispatch level, activation memory, latency,
receptive fields and a structure summary (``cvpipe profile``); plus data previews.

- :func:`profile_model` - all of it in one :class:`Profile` (text, JSON, plots).
- :func:`count_parameters`, :func:`count_macs`, :func:`activation_memory`, :func:`measure_latency`.
- :func:`receptive_fields`, :func:`receptive_field`, :func:`conv_output_size`,
  :func:`pool_output_size`, :func:`conv_transpose_output_size`.
- :func:`summarize`, :func:`format_tree` - torchsummary-style tree.
"""

from cvpipe.analysis.flops import MacCount, count_macs
from cvpipe.analysis.latency import Latency, measure_latency
from cvpipe.analysis.memory import ActivationMemory, activation_memory
from cvpipe.analysis.params import ParamCount, count_parameters
from cvpipe.analysis.profile import Profile, profile_model
from cvpipe.analysis.receptive_field import (
    LayerGeometry,
    conv_output_size,
    conv_transpose_output_size,
    pool_output_size,
    receptive_field,
    receptive_fields,
)
from cvpipe.analysis.summary import ModuleRow, format_tree, summarize

__all__ = [
    "ActivationMemory",
    "LayerGeometry",
    "Latency",
    "MacCount",
    "ModuleRow",
    "ParamCount",
    "Profile",
    "activation_memory",
    "conv_output_size",
    "conv_transpose_output_size",
    "count_macs",
    "count_parameters",
    "format_tree",
    "measure_latency",
    "pool_output_size",
    "profile_model",
    "receptive_field",
    "receptive_fields",
    "summarize",
]
