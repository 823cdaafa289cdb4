"""Explain and measure trained models: ``cvpipe cam``, ``cvpipe features``, ``cvpipe profile``.

    report = cvpipe.cam("runs/train/exp/weights/best.pt", ["photos/"], methods=["gradcam", "scorecam"])
    paths = cvpipe.feature_maps("runs/train/exp/weights/best.pt", "photo.jpg", layer="layer3")
    prof = cvpipe.profile("resnet50", imgsz=224)       # or a checkpoint
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

from cvpipe.errors import ConfigError, DataError
from cvpipe.tasks.common import Trained, check_at_least, device_for, increment_run_dir, load_trained, new_run_dir

PathLike = Union[str, Path]


def _trained(checkpoint: Union[PathLike, Trained]) -> Trained:
    trained = checkpoint if isinstance(checkpoint, Trained) else load_trained(checkpoint)
    check_has_layers(trained)
    return trained


def check_has_layers(trained: Trained) -> None:
    """ConfigError for an exported model, which has no layers to hook or gradients to follow."""
    from cvpipe.tasks.export import OnnxClassifier

    if isinstance(trained.model, OnnxClassifier):
        raise ConfigError(f"{trained.path}: an exported model has no layers to hook; CAM, feature maps and profile need the PyTorch checkpoint it came from (e.g. best.pt)")


def cam(
    checkpoint: Union[PathLike, Trained],
    sources: Sequence[PathLike],
    *,
    methods: Sequence[str] = ("gradcam",),
    layer: Optional[str] = None,
    target: Union[str, int, None] = None,
    faithfulness: bool = False,
    batch_size: int = 8,
    alpha: float = 0.5,
    grid: int = 16,
    device: str = "auto",
    project: PathLike = "runs/cam",
    name: str = "exp",
):
    """Class activation maps for every image in ``sources`` (files, folders or globs).

    ``methods``: names from :data:`cvpipe.explain.METHODS`, or ``["all"]`` for every method
    the model supports. ``layer``: dotted module name(s), comma-separated maps are averaged;
    default the model's CAM layer. ``target``: class name or index; default the prediction.
    Returns the :class:`cvpipe.explain.api.CamReport` (overlays, .npy maps, grid, summary CSV).
    """
    from cvpipe.data.image_io import read_image
    from cvpipe.data.transforms import denormalize
    from cvpipe.engine.logger import get_logger
    from cvpipe.engine.progress import Progress
    from cvpipe.explain import METHODS
    from cvpipe.explain.api import explain_images
    from cvpipe.explain.cam import canonical_method
    from cvpipe.tasks.predict import resolve_source

    if not sources:
        raise ConfigError("name at least one image, folder or glob to explain")
    check_at_least(1, batch=batch_size)
    check_at_least(0, grid=grid)
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha={alpha}: the overlay opacity must be in [0, 1]")
    every = list(methods) == ["all"]
    # each method once: `method=gradcam,GradCAM` wrote the same files twice and two rows per image
    methods = list(METHODS) if every else list(dict.fromkeys(canonical_method(m) for m in methods))
    if not methods:
        raise ConfigError(f"name at least one CAM method: method=gradcam, several comma-separated, or all ({', '.join(METHODS)})")
    trained = _trained(checkpoint)
    model = trained.model.to(device_for(device))
    paths = []
    for source in sources:
        kind, found = resolve_source(source)
        if kind != "images":
            raise ConfigError(f"{source}: cam explains images, not videos or cameras")
        paths += found

    unreadable: list[str] = []

    def samples():
        for path in Progress(paths, desc="cam", unit="img"):
            try:
                image = read_image(path, mode=trained.image_mode)
            except DataError as error:
                if len(paths) == 1:
                    raise
                get_logger().info(f"skipped: {error}")  # one broken file in a folder does not stop the rest
                unreadable.append(str(error))
                continue
            x = trained.transform(image)
            yield Path(path), x, denormalize(x, trained.preprocess)
        if len(unreadable) == len(paths):
            raise DataError(f"none of the {len(paths)} images could be read; the first: {unreadable[0]}")

    with new_run_dir(project, name) as out_dir:
        return explain_images(
            model, samples(), out_dir, methods, layer, target, trained.classes, faithfulness=faithfulness,
            batch_size=batch_size, grid_max=grid, alpha=alpha, skip_unsupported=every, multi_label=trained.multi_label,
        )  # fmt: skip


def layers(checkpoint: Union[PathLike, Trained]):
    """(layer infos with output shapes at the training input size, the default CAM layer)."""
    from cvpipe.explain import list_layers

    trained = _trained(checkpoint)
    height, width = trained.preprocess["image_size"]
    infos = list_layers(trained.model, (1, trained.in_chans, height, width))
    return infos, getattr(trained.model, "default_cam_layer", "")


def feature_maps(
    checkpoint: Union[PathLike, Trained],
    image: PathLike,
    *,
    layer: Optional[str] = None,
    topk: int = 15,
    device: str = "auto",
    project: PathLike = "runs/features",
    name: str = "exp",
) -> list[Path]:
    """Grid PNGs of ``layer``'s feature maps (default: the CAM layer) for one image."""
    from cvpipe.data.image_io import read_image
    from cvpipe.data.transforms import denormalize
    from cvpipe.explain.api import save_feature_maps

    check_at_least(1, topk=topk)
    trained = _trained(checkpoint)
    model = trained.model.to(device_for(device))
    x = trained.transform(read_image(image, mode=trained.image_mode))
    with new_run_dir(project, name) as out_dir:
        return save_feature_maps(model, x, denormalize(x, trained.preprocess), out_dir, layer, topk)


def profile(
    model: Union[PathLike, Trained],
    *,
    imgsz: Union[int, tuple[int, int], None] = None,
    batch: int = 1,
    num_classes: Optional[int] = None,
    in_chans: Optional[int] = None,
    runs: int = 10,
    device: str = "auto",
):
    """Parameters, MACs/FLOPs, activation memory, latency and receptive fields.

    ``model``: a checkpoint (its input size and channels are used unless ``imgsz`` is given)
    or a registered model name (built with ``num_classes`` and ``in_chans``, default 1000 and 3;
    ``imgsz`` 224). A checkpoint has its own classes and channels: other values are refused.
    Returns :class:`cvpipe.analysis.profile.Profile`.
    """
    from cvpipe.analysis import profile_model
    from cvpipe.models import check_input_size, create_model

    check_at_least(1, batch=batch, **({} if in_chans is None else {"in_chans": in_chans}))
    check_at_least(0, runs=runs, **({} if num_classes is None else {"num_classes": num_classes}))
    if imgsz is not None:
        sides = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)
        if len(sides) != 2 or min(sides) < 1:
            raise ConfigError(f"imgsz={imgsz}: a positive size, or [H,W]")
    if isinstance(model, Trained) or Path(model).is_file() or Path(model).suffix in (".pt", ".pth"):
        trained = _trained(model)
        own = {"in_chans": trained.in_chans, "num_classes": len(trained.classes)}
        for key, value in (("in_chans", in_chans), ("num_classes", num_classes)):
            if value is not None and value != own[key]:  # silently profiling another model would mislead
                raise ConfigError(f"{key}={value}: {trained.path} was trained with {key}={own[key]}; "
                                  f"{key} applies to a model name, so leave it out for a checkpoint")
        net, in_chans = trained.model, trained.in_chans
        name = trained.path.name
        imgsz = imgsz or tuple(trained.preprocess["image_size"])
    else:
        name = str(model)
        in_chans = 3 if in_chans is None else in_chans
        net = create_model(name, num_classes=1000 if num_classes is None else num_classes, in_chans=in_chans).eval()
        imgsz = imgsz or 224
    height, width = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    net = net.to(device_for(device))
    check_input_size(net, (batch, in_chans, height, width), setting="imgsz", name=name)
    return profile_model(net, (height, width), batch, in_chans, name, latency_runs=runs)


def save_profile(prof, text: str, project: PathLike = "runs/profile", name: str = "exp") -> Path:
    """Write the printed report, JSON and plots of a profile to a new run folder."""
    out_dir = increment_run_dir(project, name)
    (out_dir / "profile.txt").write_text(text + "\n", encoding="utf-8")
    prof.save_json(out_dir / "profile.json")
    prof.save_plots(out_dir)
    return out_dir
