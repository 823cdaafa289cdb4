"""Multiply-accumulates (MACs) counted at the ATen dispatch level.

Counting rules (one MAC = one multiply and one add; **FLOPs = 2 x MACs**):

============================== ==============================================================
op                             MACs
============================== ==============================================================
convolution                    out.numel() * C_in/groups * prod(kernel)
transposed convolution         in.numel() * C_out/groups * prod(kernel)
mm, addmm (n x k @ k x m)      n * k * m            (nn.Linear lands here)
bmm, baddbmm                   b * n * k * m        (``@`` on batches, einsum)
mv, addmv, dot                 n * k, n
scaled-dot-product attention   batch * heads * L * S * (E + E_v)   (Q K^T and A V; a causal
                               mask still counts the full square, as fvcore and PyTorch do)
fused multi-head attention     the Q, K, V and output projections plus the attention above
============================== ==============================================================

Everything else is *not* a multiply-accumulate and is reported, not counted: elementwise ops
(activations, residual adds), normalisation (batch norm folds into the preceding conv at
inference), pooling, softmax, reductions and resampling. Views and data movement (reshape,
permute, cat, copies) are free. The report says how many op calls each group had, so the
share of the network the MAC total covers is explicit. These rules give the numbers papers
and torchvision's model tables quote (ResNet-50 4.09 G, MobileNetV2 0.30 G, ViT-B/16 17.56 G).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import torch
import torch.nn as nn

from cvpipe.analysis.tracing import Observer, op_name, tracing

MacRule = Callable[[tuple, dict, Any], int]


def _conv_macs(args, kwargs, out) -> int:
    x, weight = args[0], args[1]
    transposed = bool(args[6]) if len(args) > 6 else bool(kwargs.get("transposed", False))
    kernel = math.prod(weight.shape[2:])
    if transposed:  # weight: (C_in, C_out / groups, *k); every input element feeds C_out/groups * k outputs
        return x.numel() * weight.shape[1] * kernel
    result = out[0] if isinstance(out, (tuple, list)) else out
    return result.numel() * weight.shape[1] * kernel  # weight: (C_out, C_in / groups, *k)


def _mm_macs(a, b) -> int:
    return a.shape[0] * a.shape[1] * b.shape[-1]


def _bmm_macs(a, b) -> int:
    return a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]


def _sdpa_macs(args, kwargs, out) -> int:
    q, k, v = args[0], args[1], args[2]  # (..., heads, L, E), (..., heads_kv, S, E), (..., heads_kv, S, E_v)
    batch_heads = math.prod(q.shape[:-2])
    return batch_heads * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])


def _native_mha_macs(args, kwargs, out) -> int:
    query, key, embed_dim = args[0], args[1], int(args[3])  # value has the shape of key
    batch = query.shape[0] if query.ndim == 3 else 1
    lq, lk = query.shape[-2], key.shape[-2]
    projections = batch * (lq + 2 * lk) * embed_dim * embed_dim + batch * lq * embed_dim * embed_dim
    attention = batch * lq * lk * embed_dim * 2  # summed over heads: H * (E / H) = E
    return projections + attention


def _linear_macs(args, kwargs, out) -> int:
    x, weight = args[0], args[1]
    return (x.numel() // weight.shape[1]) * weight.shape[1] * weight.shape[0]


_RULES_BY_NAME: dict[str, MacRule] = {
    "convolution": _conv_macs,
    "_convolution": _conv_macs,
    "mm": lambda a, kw, o: _mm_macs(a[0], a[1]),
    "addmm": lambda a, kw, o: _mm_macs(a[1], a[2]),
    "bmm": lambda a, kw, o: _bmm_macs(a[0], a[1]),
    "baddbmm": lambda a, kw, o: _bmm_macs(a[1], a[2]),
    "mv": lambda a, kw, o: a[0].shape[0] * a[0].shape[1],
    "addmv": lambda a, kw, o: a[1].shape[0] * a[1].shape[1],
    "dot": lambda a, kw, o: a[0].shape[0],
    "linear": _linear_macs,
    "_scaled_dot_product_flash_attention": _sdpa_macs,
    "_scaled_dot_product_flash_attention_for_cpu": _sdpa_macs,
    "_scaled_dot_product_efficient_attention": _sdpa_macs,
    "_scaled_dot_product_cudnn_attention": _sdpa_macs,
    "_scaled_dot_product_fused_attention_overrideable": _sdpa_macs,
    "scaled_dot_product_attention": _sdpa_macs,
    "_native_multi_head_attention": _native_mha_macs,
}

# Ops that move or re-describe data without arithmetic.
_DATA_MOVEMENT = {
    "clone", "copy_", "_to_copy", "cat", "stack", "detach", "alias", "lift_fresh", "lift_fresh_copy",
    "empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like", "full", "full_like",
    "fill_", "zero_", "new_empty", "new_empty_strided", "new_zeros", "new_ones", "new_full", "arange",
    "scalar_tensor", "_local_scalar_dense", "index", "index_select", "gather", "select_scatter",
    "slice_scatter", "constant_pad_nd", "repeat", "flip", "roll", "_unsafe_view", "split_with_sizes",
    "unbind", "masked_fill", "masked_fill_", "where", "resize_", "set_", "contiguous", "reshape",
    "_reshape_alias", "expand_copy", "view_copy", "permute_copy", "t_copy", "transpose_copy",
    "reflection_pad2d", "replication_pad2d", "_pad_enum", "pad", "tril", "triu", "one_hot",
}  # fmt: skip


def classify(func) -> str:
    """'mac' (has a rule), 'free' (view or data movement) or the kind of skipped arithmetic."""
    name = op_name(func)
    if name in _RULES_BY_NAME:
        return "mac"
    if getattr(func, "is_view", False) or name in _DATA_MOVEMENT:
        return "free"
    if "norm" in name:
        return "normalisation"
    if "pool" in name:
        return "pooling"
    if "softmax" in name:
        return "softmax"
    if "upsample" in name or "interp" in name or "grid_sampler" in name:
        return "resampling"
    if torch.Tag.pointwise in getattr(func, "tags", ()):
        return "elementwise"
    if name in {"sum", "mean", "amax", "amin", "max", "min", "var", "std", "var_mean", "prod", "norm", "cumsum"}:
        return "reduction"
    return "other"


@dataclass
class MacCount:
    """MACs of one traced forward pass."""

    total: int = 0
    by_module: dict[str, int] = field(default_factory=dict)  # inclusive: a module and all it contains
    by_leaf: dict[str, int] = field(default_factory=dict)  # exclusive: ops run directly in that module
    by_op: Counter = field(default_factory=Counter)  # op name -> MACs
    calls: dict[str, Counter] = field(default_factory=dict)  # group ('mac', 'free', 'elementwise'...) -> op -> calls
    skipped_elements: Counter = field(default_factory=Counter)  # group -> output elements of skipped ops

    @property
    def flops(self) -> int:
        """FLOPs = 2 x MACs."""
        return 2 * self.total

    @property
    def counted_calls(self) -> int:
        return sum(self.calls.get("mac", Counter()).values())

    @property
    def skipped_calls(self) -> int:
        return sum(sum(c.values()) for g, c in self.calls.items() if g not in ("mac", "free"))

    @property
    def free_calls(self) -> int:
        return sum(self.calls.get("free", Counter()).values())

    @property
    def counted_share(self) -> float:
        """Counted op calls / (counted + skipped arithmetic op calls); views and copies excluded."""
        arithmetic = self.counted_calls + self.skipped_calls
        return self.counted_calls / arithmetic if arithmetic else 1.0


class MacCounter(Observer):
    """Observer that applies the counting rules to every op of a traced forward."""

    def __init__(self, extra_rules: Optional[dict[str, MacRule]] = None):
        self.rules = {**_RULES_BY_NAME, **(extra_rules or {})}
        self.result = MacCount()
        self._by_module: defaultdict = defaultdict(int)
        self._by_leaf: defaultdict = defaultdict(int)

    def on_op(self, func, args, kwargs, out, scope) -> None:
        name = op_name(func)
        group = "mac" if name in self.rules else classify(func)
        self.result.calls.setdefault(group, Counter())[name] += 1
        if group != "mac":
            if group != "free":
                result = out[0] if isinstance(out, (tuple, list)) and out else out
                if isinstance(result, torch.Tensor):
                    self.result.skipped_elements[group] += result.numel()
            return
        macs = int(self.rules[name](args, kwargs, out))
        self.result.total += macs
        self.result.by_op[name] += macs
        for depth in range(len(scope)):
            self._by_module[scope[depth]] += macs
        self._by_leaf[scope[-1] if scope else ""] += macs

    def finish(self) -> MacCount:
        self.result.by_module = dict(self._by_module)
        self.result.by_leaf = dict(self._by_leaf)
        return self.result


@torch.no_grad()
def count_macs(model: nn.Module, inputs: torch.Tensor | Sequence[Any]) -> MacCount:
    """Trace one forward of ``model`` on ``inputs`` and count its MACs (see the module docstring).

    inputs: a (B, C, H, W) tensor or a tuple of positional arguments.
    """
    counter = MacCounter()
    args = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    with tracing(model, [counter]):
        model(*args)
    return counter.finish()
