"""Geometry: the pinhole camera with lens distortion, and image interpolation.

Depends on torch only. Everything is batched, differentiable and works in float32 and
float64; pixel coordinates put the centre of the top-left pixel at ``(0, 0)`` (OpenCV).
Bad arguments raise ``ValueError``, as torchvision's ops do.
"""

from cvpipe.geometry.camera import (
    back_project,
    field_of_view,
    intrinsic_matrix,
    intrinsic_matrix_from_fov,
    normalized_to_pixels,
    pixel_rays,
    pixels_to_normalized,
    project_points,
    undistort_points,
)
from cvpipe.geometry.distortion import distort, distortion_jacobian, undistort_normalized
from cvpipe.geometry.interpolation import resize
from cvpipe.geometry.rotation import (
    camera_center,
    invert_pose,
    pose_matrix,
    rotation_matrix_to_vector,
    rotation_vector_to_matrix,
    skew_matrix,
    split_pose,
    transform_points,
)
from cvpipe.geometry.warp import optimal_new_camera_matrix, remap, undistort_image, undistort_rectify_map

__all__ = [
    "back_project",
    "camera_center",
    "distort",
    "distortion_jacobian",
    "field_of_view",
    "intrinsic_matrix",
    "intrinsic_matrix_from_fov",
    "invert_pose",
    "normalized_to_pixels",
    "optimal_new_camera_matrix",
    "pixel_rays",
    "pixels_to_normalized",
    "pose_matrix",
    "project_points",
    "remap",
    "resize",
    "rotation_matrix_to_vector",
    "rotation_vector_to_matrix",
    "skew_matrix",
    "split_pose",
    "transform_points",
    "undistort_image",
    "undistort_normalized",
    "undistort_points",
    "undistort_rectify_map",
]
