"""Output sizes, strides and receptive fields of convolutional networks.

Size helpers (per axis; ints or tuples)::

    conv:            out = floor((n + 2p - d (k - 1) - 1) / s) + 1
    transposed conv: out = (n - 1) s - 2p + d (k - 1) + output_padding + 1
    pooling:         the conv formula, with ceil instead of floor when ``ceil_mode`` (and the
                     last window must start inside the input or its left padding, as PyTorch does)

Receptive field. The notes give the recursion from the output back to the input,
``F(i) = (F(i+1) - 1) * stride_i + k_i`` (:func:`receptive_field`). Running the network forward
we carry, per spatial axis, the receptive field ``r``, the jump ``j`` (distance in input pixels
between neighbouring output units: the cumulative stride) and the centre ``c`` of the first
unit's field, and update them at each layer with effective kernel ``k' = d (k - 1) + 1``::

    r_out = r_in + (k' - 1) j_in        j_out = j_in s        c_out = c_in + ((k' - 1) / 2 - p) j_in

which unrolls to the same numbers. Branches that meet (residual adds, concatenation) take the
largest field. Context broadcast from a pooled (B, C, 1, 1) tensor, as in squeeze-and-excitation
gates, is not counted: the tables report the local field of view. Outputs with no spatial axes
left (after global pooling, flattening or attention) are global.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn

from cvpipe.analysis.tracing import Observer, op_name, tensors_in, tracing
from cvpipe.explain.hooks import eval_mode

IntOrTuple = Union[int, Sequence[int]]


def _per_axis(value: IntOrTuple, n: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * n
    value = tuple(int(v) for v in value)
    if len(value) == 1:
        return value * n
    if len(value) != n:
        raise ValueError(f"expected {n} values, got {value}")
    return value


def conv_output_size(
    size: IntOrTuple, kernel_size: IntOrTuple, stride: IntOrTuple = 1, padding: IntOrTuple = 0, dilation: IntOrTuple = 1
) -> Union[int, tuple[int, ...]]:
    """Output size of ``nn.Conv2d`` (or Conv1d/3d) for an input of ``size`` (int, or one per axis)."""
    return _pool_like(size, kernel_size, stride, padding, dilation, ceil_mode=False)


def pool_output_size(
    size: IntOrTuple,
    kernel_size: IntOrTuple,
    stride: Optional[IntOrTuple] = None,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
) -> Union[int, tuple[int, ...]]:
    """Output size of ``nn.MaxPool2d`` / ``nn.AvgPool2d``; ``stride`` defaults to the kernel size."""
    return _pool_like(size, kernel_size, kernel_size if stride is None else stride, padding, dilation, ceil_mode)


def conv_transpose_output_size(
    size: IntOrTuple,
    kernel_size: IntOrTuple,
    stride: IntOrTuple = 1,
    padding: IntOrTuple = 0,
    output_padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
) -> Union[int, tuple[int, ...]]:
    """Output size of ``nn.ConvTranspose2d`` for an input of ``size``."""
    n = 1 if isinstance(size, int) else len(size)
    sizes = _per_axis(size, n)
    k, s, p, op, d = (_per_axis(v, n) for v in (kernel_size, stride, padding, output_padding, dilation))
    out = tuple((sizes[i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1 for i in range(n))
    return out[0] if isinstance(size, int) else out


def _pool_like(size, kernel_size, stride, padding, dilation, ceil_mode):
    n = 1 if isinstance(size, int) else len(size)
    sizes = _per_axis(size, n)
    k, s, p, d = (_per_axis(v, n) for v in (kernel_size, stride, padding, dilation))
    out = []
    for i in range(n):
        span = sizes[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1
        if span < 0:
            raise ValueError(f"kernel {k[i]} (dilation {d[i]}) does not fit an input of {sizes[i]} with padding {p[i]}")
        o = (-(-span // s[i]) if ceil_mode else span // s[i]) + 1
        if ceil_mode and (o - 1) * s[i] >= sizes[i] + p[i]:
            o -= 1  # the last window would start in the right padding
        out.append(o)
    return out[0] if isinstance(size, int) else tuple(out)


def receptive_field(layers: Sequence[tuple[int, int]]) -> int:
    """Receptive field of a chain of (kernel, stride) layers, by the notes' back-to-front recursion.

    ``F = 1`` at the last layer's output, then ``F = (F - 1) * stride + kernel`` for each layer
    from the last to the first. ``receptive_field([(3, 2), (2, 2)]) == 5`` (conv then pool).
    """
    field = 1
    for kernel, stride in reversed(list(layers)):
        field = (field - 1) * stride + kernel
    return field


@dataclass(frozen=True)
class Geometry:
    """Per spatial axis: receptive field, jump (cumulative stride) and centre of the first field."""

    field: tuple[int, ...]
    jump: tuple[float, ...]
    start: tuple[float, ...]

    def through(self, kernel, stride, padding, dilation) -> "Geometry":
        n = len(self.field)
        k, s, p, d = (_per_axis(v, n) for v in (kernel, stride, padding, dilation))
        keff = [d[i] * (k[i] - 1) + 1 for i in range(n)]
        return Geometry(
            field=tuple(int(round(self.field[i] + (keff[i] - 1) * self.jump[i])) for i in range(n)),
            jump=tuple(self.jump[i] * s[i] for i in range(n)),
            start=tuple(self.start[i] + ((keff[i] - 1) / 2 - p[i]) * self.jump[i] for i in range(n)),
        )


@dataclass
class LayerGeometry:
    name: str
    type: str
    output_shape: tuple[int, ...]
    field: Optional[tuple[int, ...]]  # None: global (the output depends on the whole input)
    stride: Optional[tuple[float, ...]]
    start: Optional[tuple[float, ...]]


def _spatial(t: torch.Tensor, n: int) -> tuple[int, ...]:
    return tuple(t.shape[-n:])


class GeometryTracker(Observer):
    """Observer propagating :class:`Geometry` from the input through every op."""

    def __init__(self, inputs: torch.Tensor):
        self.n = inputs.ndim - 2
        self.geometry: dict[int, Geometry] = {}
        self._set(inputs, Geometry((1,) * self.n, (1.0,) * self.n, (0.5,) * self.n))
        self.layers: list[LayerGeometry] = []
        self._seen_modules: set[str] = set()

    def _set(self, t: torch.Tensor, geometry: Geometry) -> None:
        # Keyed by id without keeping the tensor alive (that would distort memory measurements):
        # the entry goes when the tensor does, before its id can be reused.
        self.geometry[id(t)] = geometry
        weakref.finalize(t, self.geometry.pop, id(t), None)

    def _get(self, t) -> Optional[Geometry]:
        return self.geometry.get(id(t)) if isinstance(t, torch.Tensor) else None

    def on_op(self, func, args, kwargs, out, scope) -> None:
        name = op_name(func)
        first = args[0] if args else None
        geometry = self._get(first)
        result = None
        if name in ("convolution", "_convolution") and geometry is not None:
            weight, stride, padding, dilation, transposed = args[1], args[3], args[4], args[5], args[6]
            kernel = tuple(weight.shape[2:])
            if transposed:  # each output sees ceil(k'/s) inputs spaced j_in apart; units get closer
                n = self.n
                s, d = _per_axis(stride, n), _per_axis(dilation, n)
                reach = [math.ceil((d[i] * (kernel[i] - 1) + 1) / s[i]) for i in range(n)]
                result = Geometry(
                    tuple(int(round(geometry.field[i] + (reach[i] - 1) * geometry.jump[i])) for i in range(n)),
                    tuple(geometry.jump[i] / s[i] for i in range(n)),
                    geometry.start,
                )
            else:
                result = geometry.through(kernel, stride, padding, dilation)
        elif "pool" in name and "adaptive" not in name and geometry is not None:
            kernel = args[1]
            stride = args[2] if len(args) > 2 and args[2] else kernel
            padding = args[3] if len(args) > 3 else 0
            dilation = args[4] if name.startswith("max_pool") and len(args) > 4 else 1
            result = geometry.through(kernel, stride, padding, dilation)
        elif "adaptive" in name and geometry is not None:
            in_size, out_size = _spatial(first, self.n), _spatial(tensors_in(out)[0], self.n)
            if all(o == 1 for o in out_size):
                result = None  # global
            else:  # windows of ceil(n/o) every floor(n/o) (exact when o divides n)
                kernel = tuple(-(-in_size[i] // out_size[i]) for i in range(self.n))
                stride = tuple(in_size[i] // out_size[i] for i in range(self.n))
                result = geometry.through(kernel, stride, 0, 1)
        elif name.startswith("upsample") and geometry is not None:
            in_size, out_size = _spatial(first, self.n), _spatial(tensors_in(out)[0], self.n)
            extra = 0 if "nearest" in name else 1  # interpolation reads two neighbours per axis
            result = Geometry(
                tuple(geometry.field[i] + extra * int(geometry.jump[i]) for i in range(self.n)),
                tuple(geometry.jump[i] * in_size[i] / out_size[i] for i in range(self.n)),
                geometry.start,
            )
        elif name in ("constant_pad_nd", "reflection_pad2d", "replication_pad2d") and geometry is not None:
            pads = list(args[1])  # last axis first: (left, right, top, bottom, ...)
            before = [pads[2 * (self.n - 1 - i)] if 2 * (self.n - 1 - i) < len(pads) else 0 for i in range(self.n)]
            result = Geometry(
                geometry.field, geometry.jump, tuple(geometry.start[i] - before[i] * geometry.jump[i] for i in range(self.n))
            )
        else:
            result = self._merge(args, kwargs, out)
        if result is not None:
            for t in tensors_in(out):
                if t.ndim == self.n + 2:
                    self._set(t, result)

    def _merge(self, args, kwargs, out) -> Optional[Geometry]:
        outs = [t for t in tensors_in(out) if t.ndim == self.n + 2]
        if not outs:
            return None
        size = _spatial(outs[0], self.n)
        # Only inputs with the output's own spatial size carry position; broadcast ones are context.
        sources = [
            g
            for t in tensors_in((args, kwargs))
            if t.ndim == self.n + 2 and _spatial(t, self.n) == size and (g := self._get(t)) is not None
        ]
        if not sources:
            return None
        return max(sources, key=lambda g: g.field)

    def on_module_exit(self, name, module, output) -> None:
        tensors = tensors_in(output)
        if not tensors or name in self._seen_modules:
            return
        self._seen_modules.add(name)
        t = tensors[0]
        geometry = self._get(t) if t.ndim == self.n + 2 else None
        self.layers.append(
            LayerGeometry(
                name=name,
                type=type(module).__name__,
                output_shape=tuple(t.shape),
                field=geometry.field if geometry else None,
                stride=geometry.jump if geometry else None,
                start=geometry.start if geometry else None,
            )
        )


@torch.no_grad()
def receptive_fields(model: nn.Module, inputs: torch.Tensor) -> list[LayerGeometry]:
    """Receptive field, stride and output shape of every module, in the order they finish running.

    inputs: (B, C, H, W) (or any (B, C, *spatial)). ``field`` is None for modules whose output has
    no spatial axes or depends on the whole input.
    """
    tracker = GeometryTracker(inputs)
    with eval_mode(model), tracing(model, [tracker]):
        model(inputs)
    return tracker.layers
