"""Data: robust image reading, the three dataset layouts, transforms, loaders, demo data."""

from cvpipe.data.datasets import ImageDataset, Splits, build_splits
from cvpipe.data.digits import digits_root
from cvpipe.data.image_io import IMAGE_EXTENSIONS, check_image, is_image_file, read_image
from cvpipe.data.loaders import balanced_class_weights, build_loader, class_counts
from cvpipe.data.transforms import build_eval_transform, build_train_transform, make_preprocess, resolve_mean_std

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageDataset",
    "Splits",
    "balanced_class_weights",
    "build_eval_transform",
    "build_loader",
    "build_splits",
    "build_train_transform",
    "check_image",
    "class_counts",
    "digits_root",
    "is_image_file",
    "make_preprocess",
    "read_image",
    "resolve_mean_std",
]
