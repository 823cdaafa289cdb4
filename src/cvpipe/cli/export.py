"""cvpipe export CHECKPOINT [key=value ...]"""

from __future__ import annotations

DESCRIPTION = """\
Export a trained classifier to ONNX or TorchScript for deployment.

The exported network takes a float batch (N, C, H, W), resized and normalised as in
training, and returns logits; the class names and the preprocessing are stored inside the
file (ONNX metadata_props; TorchScript extra file cvpipe.json). The written file is run
once on a random batch and compared with PyTorch (ONNX Runtime when installed). ONNX needs
`pip install 'cvpipe[export]'`. `cvpipe eval` and `cvpipe predict` take the .onnx file in
place of the checkpoint (run by ONNX Runtime). Options as key=value:

  format=onnx     onnx | torchscript | pt2 (torch.export)
  out=PATH        output file (default: beside the checkpoint, e.g. best.onnx)
  batch=1         batch size traced
  dynamic=true    leave the batch size free (false: fixed at batch)
  opset=          ONNX opset version (default: the exporter's)
  verify=true     compare the written model with PyTorch

Example: cvpipe export runs/train/exp/weights/best.pt format=onnx
"""


def register(sub) -> None:
    from cvpipe.cli import formatter

    p = sub.add_parser("export", help="export a trained model to ONNX or TorchScript", description=DESCRIPTION,
                       formatter_class=formatter)
    p.add_argument("checkpoint", help="a cvpipe checkpoint (best.pt or last.pt)")
    p.add_argument("options", nargs="*", metavar="key=value", help="options listed above")
    p.set_defaults(func=run)


def run(args) -> int:
    from cvpipe.tasks.common import as_bool, parse_options
    from cvpipe.tasks.export import export

    known = {"format": str, "out": str, "batch": int, "dynamic": as_bool, "opset": int, "verify": as_bool}
    opts, _ = parse_options(args.options, known, "export")
    print(export(args.checkpoint, **opts).describe())
    return 0
