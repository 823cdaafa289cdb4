"""A torchsummary-style structure tree: every module with its output shape, parameters and MACs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn as nn

from cvpipe.analysis.flops import MacCount, MacCounter
from cvpipe.analysis.params import ParamCount, count_parameters
from cvpipe.analysis.tracing import Observer, tensors_in, tracing
from cvpipe.explain.hooks import eval_mode


class OutputShapes(Observer):
    """Observer recording the output shape of each module's first call."""

    def __init__(self):
        self.shapes: dict[str, tuple[int, ...]] = {}

    def on_module_exit(self, name, module, output) -> None:
        tensors = tensors_in(output)
        if tensors and name not in self.shapes:
            self.shapes[name] = tuple(tensors[0].shape)


@dataclass
class ModuleRow:
    name: str  # dotted name, "" for the model itself
    type: str
    depth: int  # 0 for the model, 1 for its children...
    output_shape: Optional[tuple[int, ...]]  # None if the module never ran
    params: int  # including children
    trainable: int
    macs: int  # including children and the functional ops run inside its forward


def structure_rows(model: nn.Module, shapes: dict, params: ParamCount, macs: MacCount) -> list[ModuleRow]:
    """One row per module (registration order) from the three analyses of the same model."""
    rows = []
    for name, module in model.named_modules():
        total, trainable = params.per_module.get(name, (0, 0))
        rows.append(
            ModuleRow(
                name=name,
                type=type(module).__name__,
                depth=0 if name == "" else name.count(".") + 1,
                output_shape=shapes.get(name),
                params=total,
                trainable=trainable,
                macs=macs.by_module.get(name, 0),
            )
        )
    return rows


@torch.no_grad()
def summarize(model: nn.Module, inputs: torch.Tensor) -> list[ModuleRow]:
    """Trace ``model`` on ``inputs`` once and return the structure rows."""
    shapes, counter = OutputShapes(), MacCounter()
    with eval_mode(model), tracing(model, [shapes, counter]):
        model(inputs)
    return structure_rows(model, shapes.shapes, count_parameters(model), counter.finish())


def format_tree(rows: Sequence[ModuleRow], max_depth: int = 2, extra: Optional[dict[str, str]] = None) -> str:
    """Indented text tree down to ``max_depth`` (-1 for all). ``extra`` adds a column by module name."""
    header = ["module (type)", "output shape", "params", "MACs"] + (["RF / stride"] if extra is not None else [])
    table = []
    for row in rows:
        if max_depth >= 0 and row.depth > max_depth:
            continue
        label = row.name.rsplit(".", 1)[-1] if row.name else ""
        label = "  " * row.depth + (f"{label} ({row.type})" if label else row.type)
        cells = [
            label,
            "-" if row.output_shape is None else str(list(row.output_shape)),
            f"{row.params:,}",
            human(row.macs),
        ]
        if extra is not None:
            cells.append(extra.get(row.name, ""))
        table.append(cells)
    return format_table(header, table, align="lrrrr")


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """Plain-text table; ``align`` has one 'l' or 'r' per column (default left)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells):
        out = []
        for i, cell in enumerate(cells):
            right = i < len(align) and align[i] == "r"
            out.append(str(cell).rjust(widths[i]) if right else str(cell).ljust(widths[i]))
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *[line(r) for r in rows]])


def human(value: float, unit: str = "") -> str:
    """12_345_678 -> '12.35 M'; SI prefixes (powers of 1000)."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= factor:
            return f"{value / factor:.2f} {prefix}{unit}"
    return f"{value:g} {unit}".rstrip() if value else "0"
