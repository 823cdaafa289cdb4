"""Activation memory: the peak of live intermediate tensors at inference, and the tensors autograd
keeps for the backward pass in training.

*Inference peak.* During a traced forward (no gradients), every op output is tracked by the
storage it lives in: a new storage adds its bytes, and when the last tensor object using it is
freed the bytes go again. The running maximum is the peak; parameters, buffers and the input
are excluded. It is what a caching allocator would need on top of the weights, give or take
fragmentation and kernel workspaces.

*Training.* ``torch.autograd.graph.saved_tensors_hooks`` sees every tensor a forward with
gradients saves for backward; the sum over distinct storages (input included, parameters not)
is the activation memory a training step holds at its peak, per batch.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from itertools import chain
from typing import Sequence

import torch
import torch.nn as nn

from cvpipe.analysis.tracing import Observer, tensors_in, tracing
from cvpipe.explain.hooks import eval_mode


@dataclass
class ActivationMemory:
    inference_peak_bytes: int  # live intermediates at the worst moment of a no-grad forward
    peak_scope: str  # module running when the peak was reached
    training_saved_bytes: int  # tensors saved for backward by a forward with gradients
    batch: int


def _storage_key(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


class LiveActivations(Observer):
    """Observer tracking live op outputs by storage; see the module docstring."""

    def __init__(self, excluded: Sequence[torch.Tensor] = ()):
        self.excluded = {_storage_key(t) for t in excluded if t.numel()}
        self.bytes: dict[int, int] = {}
        self.refs: dict[int, int] = {}
        self.current = 0
        self.peak = 0
        self.peak_scope = ""
        self._finalizers: list[weakref.finalize] = []

    def on_op(self, func, args, kwargs, out, scope) -> None:
        for t in tensors_in(out):
            if t.numel() == 0 or t.device.type == "meta":
                continue
            key = _storage_key(t)
            if key in self.excluded:
                continue
            if key not in self.refs:
                self.refs[key] = 0
                self.bytes[key] = t.untyped_storage().nbytes()
                self.current += self.bytes[key]
                if self.current > self.peak:
                    self.peak, self.peak_scope = self.current, scope[-1] if scope else ""
            self.refs[key] += 1
            self._finalizers.append(weakref.finalize(t, self._release, key))

    def _release(self, key: int) -> None:
        self.refs[key] -= 1
        if self.refs[key] == 0:
            self.current -= self.bytes.pop(key)
            del self.refs[key]

    def finish(self) -> None:
        for finalizer in self._finalizers:  # tensors still alive (the output) need no callback
            finalizer.detach()
        self._finalizers.clear()


def saved_for_backward_bytes(model: nn.Module, inputs: torch.Tensor) -> int:
    """Bytes of distinct storages autograd saves during one forward with gradients enabled."""
    weights = {_storage_key(t) for t in chain(model.parameters(), model.buffers()) if t.numel()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.numel() and t.device.type != "meta":
            key = _storage_key(t)
            if key not in weights:
                saved[key] = t.untyped_storage().nbytes()
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        output = model(inputs)
    del output
    return sum(saved.values())


def activation_memory(model: nn.Module, inputs: torch.Tensor) -> ActivationMemory:
    """Both estimates for ``inputs`` (B, C, H, W); the model runs in eval mode."""
    with eval_mode(model):
        live = LiveActivations(excluded=[inputs, *model.parameters(), *model.buffers()])
        with torch.no_grad(), tracing(model, [live]):
            output = model(inputs)
        del output
        live.finish()
        training = saved_for_backward_bytes(model, inputs)
    return ActivationMemory(live.peak, live.peak_scope, training, int(inputs.shape[0]))
