"""``cvpipe profile``: everything about a model's size and cost in one report.

One traced forward (no gradients) gives the MACs per op and module, output shapes, receptive
fields and the inference activation peak; a forward with gradients gives the memory training
keeps for backward; timed forwards give the latency.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn

from cvpipe.analysis.flops import MacCount, MacCounter
from cvpipe.analysis.latency import Latency, measure_latency
from cvpipe.analysis.memory import ActivationMemory, LiveActivations, saved_for_backward_bytes
from cvpipe.analysis.params import ParamCount, count_parameters
from cvpipe.analysis.receptive_field import GeometryTracker, LayerGeometry
from cvpipe.analysis.summary import ModuleRow, OutputShapes, format_table, format_tree, human, structure_rows
from cvpipe.analysis.tracing import tracing
from cvpipe.explain.hooks import eval_mode


@dataclass
class Profile:
    name: str
    input_shape: tuple[int, ...]
    dtype: str
    params: ParamCount
    macs: MacCount  # for the whole batch
    rows: list[ModuleRow]
    geometry: list[LayerGeometry]
    memory: ActivationMemory
    latency: Optional[Latency]

    @property
    def batch(self) -> int:
        return self.input_shape[0]

    @property
    def macs_per_image(self) -> float:
        return self.macs.total / self.batch

    def to_text(self, depth: int = 2) -> str:
        return format_profile(self, depth)

    def to_dict(self) -> dict:
        return {
            "model": self.name,
            "input_shape": list(self.input_shape),
            "dtype": self.dtype,
            "params": {"total": self.params.total, "trainable": self.params.trainable, "buffers": self.params.buffers, "bytes": self.params.bytes},
            "macs": {
                "per_image": self.macs_per_image,
                "batch_total": self.macs.total,
                "flops_per_image": 2 * self.macs_per_image,
                "note": "FLOPs = 2 x MACs",
                "by_op": dict(self.macs.by_op),
                "op_calls": {group: dict(calls) for group, calls in self.macs.calls.items()},
                "counted_share": self.macs.counted_share,
                "skipped_output_elements": dict(self.macs.skipped_elements),
            },
            "modules": [asdict(r) for r in self.rows],
            "receptive_fields": [asdict(g) for g in self.geometry],
            "memory": asdict(self.memory),
            "latency": None if self.latency is None else {**asdict(self.latency), "images_per_second": self.latency.images_per_second},
        }

    def save_json(self, path: Union[str, Path]) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        return path

    def save_plots(self, out_dir: Union[str, Path]) -> list[Path]:
        """``profile_cost.png`` (MACs and parameters per block) and, for CNNs, ``profile_rf.png``."""
        out_dir = Path(out_dir)
        paths = [plot_cost(self, out_dir / "profile_cost.png")]
        if spatial_changes(self.geometry):
            paths.append(plot_receptive_field(self, out_dir / "profile_rf.png"))
        return paths


def guess_in_chans(model: nn.Module, default: int = 3) -> int:
    """The model's ``in_chans`` attribute, else the input channels of its first convolution."""
    if isinstance(getattr(model, "in_chans", None), int):
        return model.in_chans
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            return module.in_channels
    return default


def profile_model(
    model: nn.Module,
    imgsz: Union[int, Sequence[int]] = 224,
    batch: int = 1,
    in_chans: Optional[int] = None,
    name: Optional[str] = None,
    latency_runs: int = 10,
    warmup: int = 3,
) -> Profile:
    """Profile ``model`` on a (batch, in_chans, H, W) input on the device its parameters live on.

    ``latency_runs=0`` skips timing. The model is put in eval mode for the measurements and
    its modes restored afterwards.
    """
    height, width = (imgsz, imgsz) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[1]))
    reference = next(iter(model.parameters()), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else torch.float32
    channels = in_chans or guess_in_chans(model)
    inputs = torch.randn(batch, channels, height, width, device=device, dtype=dtype)

    with eval_mode(model):
        counter, shapes, geometry = MacCounter(), OutputShapes(), GeometryTracker(inputs)
        live = LiveActivations(excluded=[inputs, *model.parameters(), *model.buffers()])
        with torch.no_grad(), tracing(model, [counter, shapes, geometry, live]):
            output = model(inputs)
        del output
        live.finish()
        macs = counter.finish()
        saved = saved_for_backward_bytes(model, inputs)
        latency = measure_latency(model, inputs, warmup, latency_runs) if latency_runs > 0 else None
    params = count_parameters(model)
    return Profile(
        name=name or type(model).__name__,
        input_shape=tuple(inputs.shape),
        dtype=str(dtype).replace("torch.", ""),
        params=params,
        macs=macs,
        rows=structure_rows(model, shapes.shapes, params, macs),
        geometry=geometry.layers,
        memory=ActivationMemory(live.peak, live.peak_scope, saved, batch),
        latency=latency,
    )


# --------------------------------------------------------------------------- text


def mib(nbytes: float) -> str:
    return f"{nbytes / 2**20:.2f} MiB"


def _pair(values) -> str:
    if values is None:
        return "global"
    values = [int(v) if float(v).is_integer() else round(float(v), 2) for v in values]
    return str(values[0]) if len(set(values)) == 1 else "x".join(map(str, values))


def spatial_changes(geometry: Sequence[LayerGeometry]) -> list[LayerGeometry]:
    """Layers where the receptive field or stride changes (convolutions, pooling), in run order."""
    out, last = [], None
    for g in geometry:
        if g.field is None:
            continue
        key = (g.field, g.stride)
        if key != last:
            out.append(g)
            last = key
    return out


def format_profile(profile: Profile, depth: int = 2) -> str:
    p, m = profile.params, profile.macs
    b = profile.batch
    geometry = {g.name: f"{_pair(g.field)} / {_pair(g.stride)}" for g in profile.geometry if g.field is not None}
    lines = [
        f"{profile.name}: input {list(profile.input_shape)} {profile.dtype}",
        "",
        format_tree(profile.rows, depth, extra=geometry),
        "",
        f"parameters   {p.total:,} total, {p.trainable:,} trainable, {p.frozen:,} frozen; "
        f"{p.buffers:,} buffer values; {mib(p.bytes)} with buffers",
        f"MACs         {human(profile.macs_per_image)} per image ({human(m.total)} for the batch of {b}); "
        f"FLOPs = 2 x MACs = {human(2 * profile.macs_per_image)} per image",
        "             counted: conv, linear/matmul and attention ops; by op: "
        + ", ".join(f"{op} {human(v / b)} ({100 * v / max(m.total, 1):.1f}%)" for op, v in m.by_op.most_common()),
        f"op coverage  {m.counted_calls} of {m.counted_calls + m.skipped_calls} arithmetic op calls have a MAC rule "
        f"({100 * m.counted_share:.0f}%); {m.free_calls} view/copy calls are free",
    ]
    skipped = [(g, c) for g, c in m.calls.items() if g not in ("mac", "free")]
    if skipped:
        lines.append(
            "             skipped (no multiply-accumulate): "
            + "; ".join(
                f"{group} {sum(c.values())} (" + ", ".join(f"{op} x{n}" for op, n in c.most_common(4))
                + f"; {human(m.skipped_elements[group] / b)} output elements per image)"
                for group, c in sorted(skipped, key=lambda gc: -sum(gc[1].values()))
            )
        )
    mem = profile.memory
    lines.append(
        f"activations  inference peak {mib(mem.inference_peak_bytes)} (at {mem.peak_scope or 'model'}); "
        f"saved for backward when training {mib(mem.training_saved_bytes)} (batch {b})"
    )
    if profile.latency is not None:
        lat = profile.latency
        lines.append(
            f"latency      {lat.median_ms:.2f} ms median over {lat.runs} runs (min {lat.min_ms:.2f}, max {lat.max_ms:.2f}) "
            f"on {lat.device}, batch {lat.batch}: {lat.images_per_second:.1f} images/s"
        )
    changes = spatial_changes(profile.geometry)
    if changes:
        table = [[g.name, g.type, _pair(g.output_shape[2:]), _pair(g.field), _pair(g.stride)] for g in changes]
        lines += ["", "receptive field (px) and stride where they change:", format_table(["layer", "type", "output", "RF", "stride"], table, "llrrr")]
    return "\n".join(lines)


# --------------------------------------------------------------------------- plots


def _blocks(rows: Sequence[ModuleRow], minimum: int = 8, limit: int = 48) -> list[ModuleRow]:
    """The shallowest cut through the module tree with at least ``minimum`` modules that ran.

    A cut at depth d holds the modules at depth d plus shallower modules without children, so
    together they cover the whole network once. Registration order; at most ``limit`` rows.
    """
    ran = [r for r in rows if r.output_shape is not None and r.depth > 0]
    if not ran:
        return []

    def is_leaf(row):
        return not any(other.name.startswith(row.name + ".") for other in ran)

    level = ran
    for depth in range(1, max(r.depth for r in ran) + 1):
        level = [r for r in ran if r.depth == depth or (r.depth < depth and is_leaf(r))]
        if len(level) >= minimum:
            break
    return level[:limit]


def plot_cost(profile: Profile, path: Union[str, Path]) -> Path:
    from cvpipe.viz import new_figure, save_figure

    blocks = _blocks(profile.rows)
    labels = [r.name for r in blocks][::-1]
    fig, (ax_macs, ax_params) = new_figure(1, 2, size=(11, 0.32 * len(labels) + 1.6), sharey=True)
    ax_macs.barh(labels, [r.macs / profile.batch / 1e6 for r in blocks][::-1], color="tab:blue")
    ax_macs.set_xlabel("MMACs per image (FLOPs = 2 x MACs)")
    ax_params.barh(labels, [r.params / 1e6 for r in blocks][::-1], color="tab:orange")
    ax_params.set_xlabel("parameters (M)")
    ax_macs.tick_params(axis="y", labelsize=7)
    fig.suptitle(f"{profile.name} at {list(profile.input_shape[1:])}: {human(profile.macs_per_image)}MACs, {human(profile.params.total)} params")
    return save_figure(fig, path)


def plot_receptive_field(profile: Profile, path: Union[str, Path]) -> Path:
    from cvpipe.viz import new_figure, save_figure

    changes = spatial_changes(profile.geometry)
    fig, ax = new_figure(size=(8, 4.5))
    index = range(len(changes))
    ax.plot(index, [max(g.field) for g in changes], marker="o", label="receptive field (px)")
    ax.plot(index, [max(g.stride) for g in changes], marker="s", label="stride (px)")
    ax.axhline(max(profile.input_shape[2:]), color="grey", linestyle="--", label="input size")
    ax.set_yscale("log", base=2)
    ax.set_xticks(list(index))
    ax.set_xticklabels([g.name for g in changes], rotation=90, fontsize=6)
    ax.set_ylabel("pixels")
    ax.legend()
    ax.set_title(f"{profile.name}: receptive field and stride by layer")
    return save_figure(fig, path)
