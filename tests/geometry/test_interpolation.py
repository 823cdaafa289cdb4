"""resize against cv2.resize, torch.nn.functional.interpolate, a slow reference, and
properties any interpolator must have."""

from unittest import mock

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.autograd import gradcheck

import cvpipe.geometry.interpolation as interpolation
from cvpipe.geometry import resize
from cvpipe.geometry.interpolation import ALIGNMENTS, MODES

# resize hands the combinations torch implements to F.interpolate and computes the rest
# with its own separable taps; "taps" forces the latter so that both are checked.
BACKENDS = ["auto", "taps"]


def run_resize(backend, image, size, **kwargs):
    if backend == "taps":
        with mock.patch.object(interpolation, "_torch_equivalent", return_value=None):
            return resize(image, size, **kwargs)
    return resize(image, size, **kwargs)

# (input (H, W), output (H, W)): up, down, mixed, non-integer ratios, exact halving,
# single rows/columns.
SIZE_PAIRS = [
    ((13, 19), (17, 23)),
    ((13, 19), (5, 7)),
    ((13, 19), (40, 9)),
    ((16, 24), (8, 12)),
    ((12, 10), (1, 31)),
    ((1, 9), (4, 3)),
]

OPENCV = {
    ("nearest", "half_pixel"): cv2.INTER_NEAREST_EXACT,
    ("nearest", "asymmetric"): cv2.INTER_NEAREST,
    ("bilinear", "half_pixel"): cv2.INTER_LINEAR,
    ("bicubic", "half_pixel"): cv2.INTER_CUBIC,
}


def chw(img):
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)


def hwc(t):
    return t.permute(1, 2, 0).numpy()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode,align", list(OPENCV))
@pytest.mark.parametrize("sizes", SIZE_PAIRS, ids=str)
def test_matches_opencv_resize(rng, mode, align, sizes, backend):
    (h, w), (oh, ow) = sizes
    interpolation = OPENCV[mode, align]
    img8 = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    expected8 = cv2.resize(img8, (ow, oh), interpolation=interpolation).reshape(oh, ow, 3)
    ours8 = hwc(run_resize(backend, chw(img8), (oh, ow), mode=mode, align=align))
    if mode == "nearest":
        # Pure indexing. These size pairs put no sample exactly on a tie between two
        # pixels; ties are covered by test_nearest_indices_on_every_size_pair.
        np.testing.assert_array_equal(ours8, expected8)
    else:
        # OpenCV's uint8 INTER_LINEAR/INTER_CUBIC run in fixed point (weights quantised to
        # 11 bits, intermediate sums rounded); we round once from float. At most one grey
        # level apart.
        assert np.abs(ours8.astype(int) - expected8).max() <= 1

    img = rng.uniform(0, 1, (h, w, 3)).astype(np.float32)
    expected = cv2.resize(img, (ow, oh), interpolation=interpolation).reshape(oh, ow, 3)
    ours = hwc(run_resize(backend, chw(img), (oh, ow), mode=mode, align=align))
    np.testing.assert_allclose(ours, expected, atol=2e-6, rtol=0)


TORCH = [
    # (our mode, our align, antialias, cubic_a, torch mode, torch align_corners)
    ("nearest", "asymmetric", False, -0.75, "nearest", None),
    ("nearest", "half_pixel", False, -0.75, "nearest-exact", None),
    ("bilinear", "half_pixel", False, -0.75, "bilinear", False),
    ("bilinear", "align_corners", False, -0.75, "bilinear", True),
    ("bicubic", "half_pixel", False, -0.75, "bicubic", False),
    ("bicubic", "align_corners", False, -0.75, "bicubic", True),
    # torch's antialiased bicubic follows PIL, whose kernel has a = -0.5.
    ("bilinear", "half_pixel", True, -0.75, "bilinear", False),
    ("bicubic", "half_pixel", True, -0.5, "bicubic", False),
]


# torch's antialiased kernels, when an axis grows, renormalise at the border instead of
# repeating the edge pixel; ours interpolate as without antialiasing there. So antialias
# parity is checked on shrinking size pairs only.
TORCH_CASES = [
    pytest.param(*case, sizes, id=f"{case[4]}-{case[1]}-aa{case[2]}-{sizes}")
    for case in TORCH
    for sizes in SIZE_PAIRS
    if not case[2] or (sizes[1][0] <= sizes[0][0] and sizes[1][1] <= sizes[0][1])
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode,align,antialias,a,torch_mode,align_corners,sizes", TORCH_CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_torch_interpolate(mode, align, antialias, a, torch_mode, align_corners, sizes, dtype, backend):
    (h, w), (oh, ow) = sizes
    gen = torch.Generator().manual_seed(oh * 100 + ow)
    img = torch.rand(2, 3, h, w, generator=gen, dtype=dtype)
    kwargs = {} if align_corners is None else {"align_corners": align_corners}
    if antialias:
        kwargs["antialias"] = True
    expected = F.interpolate(img, (oh, ow), mode=torch_mode, **kwargs)
    ours = run_resize(backend, img, (oh, ow), mode=mode, align=align, antialias=antialias, cubic_a=a)
    atol = 2e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(ours, expected, atol=atol, rtol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_uint8_matches_torch_within_one_grey_level(rng, backend):
    img = torch.from_numpy(rng.integers(0, 256, (2, 3, 13, 19), dtype=np.uint8))
    for antialias in (False, True):
        expected = F.interpolate(img, (7, 11), mode="bilinear", antialias=antialias)
        ours = run_resize(backend, img, (7, 11), antialias=antialias)
        assert ours.dtype == torch.uint8
        assert (ours.int() - expected.int()).abs().max() <= 1


def test_nearest_indices_on_every_size_pair():
    """Nearest-neighbour source indices against OpenCV and torch for every pair of sizes
    1..40. Where the source coordinate falls exactly on the boundary between two pixels
    (a tie), ours is the exact formula (floor), while OpenCV and torch evaluate it in
    floating point and may land one pixel lower; everywhere else all must agree."""
    for n_in in range(1, 41):
        row = np.arange(n_in, dtype=np.float32)[None].repeat(2, 0)
        for n_out in range(1, 41):
            d = np.arange(n_out)
            for align, cv_flag, torch_mode, numerator, denominator in [
                ("half_pixel", cv2.INTER_NEAREST_EXACT, "nearest-exact", (2 * d + 1) * n_in, 2 * n_out),
                ("asymmetric", cv2.INTER_NEAREST, "nearest", d * n_in, n_out),
            ]:
                tie = numerator % denominator == 0
                ours = resize(torch.from_numpy(row), (2, n_out), mode="nearest", align=align)[0].numpy()
                exact = np.minimum(numerator // denominator, n_in - 1)
                np.testing.assert_array_equal(ours, exact)
                for theirs in (
                    cv2.resize(row, (n_out, 2), interpolation=cv_flag)[0],
                    F.interpolate(torch.from_numpy(row)[None, None], (2, n_out), mode=torch_mode)[0, 0, 0].numpy(),
                ):
                    np.testing.assert_array_equal(ours[~tie], theirs[~tie])
                    assert np.isin(ours[tie] - theirs[tie], [0, 1]).all()


def notes_bilinear(img, out_h, out_w, align):
    """The notes' BilinearInterpolation, as described, pixel by pixel (slow reference):
    source coordinate (d + 0.5) * s - 0.5 ('center') or d * s ('left'), clamped to
    [0, size - 1], then the two-by-two weighted average."""
    in_h, in_w = img.shape[-2:]
    out = np.zeros((*img.shape[:-2], out_h, out_w))

    def source(d, n_in, n_out):
        s = d * n_in / n_out if align == "left" else (d + 0.5) * n_in / n_out - 0.5
        return min(max(s, 0.0), n_in - 1.0)

    for i in range(out_h):
        sy = source(i, in_h, out_h)
        y0 = int(np.floor(sy))
        y1, fy = min(y0 + 1, in_h - 1), sy - y0
        for j in range(out_w):
            sx = source(j, in_w, out_w)
            x0 = int(np.floor(sx))
            x1, fx = min(x0 + 1, in_w - 1), sx - x0
            top = img[..., y0, x0] * (1 - fx) + img[..., y0, x1] * fx
            bottom = img[..., y1, x0] * (1 - fx) + img[..., y1, x1] * fx
            out[..., i, j] = top * (1 - fy) + bottom * fy
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("notes_align,align", [("center", "half_pixel"), ("left", "asymmetric")])
def test_notes_bilinear_resizer_conventions(rng, notes_align, align, backend):
    img = rng.uniform(0, 255, (3, 7, 6))
    for out_size in [(56, 48), (4, 5), (9, 13)]:  # the notes' 8x upsample, and others
        expected = notes_bilinear(img, *out_size, notes_align)
        ours = run_resize(backend, torch.from_numpy(img), out_size, mode="bilinear", align=align)
        np.testing.assert_allclose(ours.numpy(), expected, atol=1e-10, rtol=0)


def test_shapes_and_dtypes():
    for shape in [(9, 7), (3, 9, 7), (2, 3, 9, 7), (2, 4, 3, 9, 7)]:
        out = resize(torch.rand(shape), (5, 11))
        assert out.shape == shape[:-2] + (5, 11)
    assert resize(torch.rand(3, 9, 7, dtype=torch.float64), (4, 4)).dtype == torch.float64
    assert resize(torch.rand(3, 9, 7).half(), (4, 4)).dtype == torch.float16
    assert resize(torch.zeros(3, 9, 7, dtype=torch.uint8), (4, 4), mode="bicubic").dtype == torch.uint8


@pytest.mark.parametrize("antialias", [False, True])
@pytest.mark.parametrize("shape", [(3, 5, 6), (1, 3, 8, 8), (3, 1, 4, 4), (4, 5, 6)])
def test_uint8_bilinear_to_a_single_pixel(shape, antialias):
    # torch's uint8 bilinear kernel fails an internal assert for three planes and a 1x1 output.
    image = torch.arange(int(np.prod(shape)), dtype=torch.float32).reshape(shape) % 256
    out = resize(image.to(torch.uint8), (1, 1), antialias=antialias)
    expected = resize(image, (1, 1), antialias=antialias).round().clamp(0, 255)
    assert out.shape == shape[:-2] + (1, 1) and out.dtype == torch.uint8
    assert (out.float() - expected).abs().max() <= 1


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
@pytest.mark.parametrize("mode, align", [("bilinear", "half_pixel"), ("bicubic", "align_corners"), ("bilinear", "asymmetric"), ("nearest", "half_pixel")])
def test_an_empty_batch_gives_an_empty_result(dtype, mode, align):
    # A batch with no images (e.g. a filtered-out list) is not an error; torch's kernel refuses it.
    out = resize(torch.zeros(0, 3, 9, 7, dtype=dtype), (4, 5), mode=mode, align=align)
    assert out.shape == (0, 3, 4, 5) and out.dtype == dtype


def test_bicubic_uint8_saturates_overshoot():
    # A hard edge makes the cubic kernel overshoot past 0 and 255; uint8 output clamps.
    img = torch.zeros(1, 4, 8, dtype=torch.uint8)
    img[..., 4:] = 255
    out = resize(img, (4, 29), mode="bicubic")
    float_out = resize(img.float(), (4, 29), mode="bicubic")
    assert float_out.min() < 0 and float_out.max() > 255
    assert out.min() == 0 and out.max() == 255


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["bilinear", "bicubic"])
def test_gradients_flow_to_the_image(mode, backend):
    img = torch.rand(2, 5, 6, dtype=torch.float64, requires_grad=True)
    for kwargs in [
        dict(size=(7, 4), align="align_corners"),
        dict(size=(3, 2), antialias=True),
        dict(size=(4, 9), align="asymmetric"),
    ]:
        assert gradcheck(lambda x: run_resize(backend, x, mode=mode, **kwargs), (img,))


def test_bad_arguments_raise_value_error():
    img = torch.rand(3, 8, 8)
    with pytest.raises(ValueError, match="mode"):
        resize(img, (4, 4), mode="area")
    with pytest.raises(ValueError, match="align"):
        resize(img, (4, 4), align="center")
    with pytest.raises(ValueError, match="antialias"):
        resize(img, (4, 4), mode="nearest", antialias=True)
    with pytest.raises(ValueError, match="antialias"):
        resize(img, (4, 4), align="align_corners", antialias=True)
    with pytest.raises(ValueError, match="size"):
        resize(img, (0, 4))
    with pytest.raises(ValueError, match="size"):
        resize(img, 4)
    with pytest.raises(ValueError, match="image"):
        resize(torch.rand(8), (4, 4))
    with pytest.raises(ValueError, match="uint8 or floating"):
        resize(torch.zeros(3, 8, 8, dtype=torch.int32), (4, 4))


# Property tests: any size pair, mode, convention, dtype.
sizes = st.tuples(st.integers(1, 12), st.integers(1, 12))
settings_ = settings(max_examples=40, deadline=None)


def _options(mode, align, antialias):
    antialias = antialias and mode != "nearest" and align == "half_pixel"
    return dict(mode=mode, align=align, antialias=antialias)


@settings_
@given(
    in_size=sizes,
    out_size=sizes,
    mode=st.sampled_from(MODES),
    align=st.sampled_from(ALIGNMENTS),
    antialias=st.booleans(),
    value=st.integers(0, 255),
    as_uint8=st.booleans(),
    backend=st.sampled_from(BACKENDS),
)
def test_constant_images_stay_constant(in_size, out_size, mode, align, antialias, value, as_uint8, backend):
    dtype = torch.uint8 if as_uint8 else torch.float32
    img = torch.full((2, *in_size), value, dtype=dtype)
    out = run_resize(backend, img, out_size, **_options(mode, align, antialias))
    assert out.shape == (2, *out_size)
    if as_uint8:
        assert (out == value).all()
    else:
        # float32 weights sum to 1 only up to rounding, so the error grows with the value:
        # a few ulps of 255 is about 1e-4.
        torch.testing.assert_close(out, torch.full_like(out, value), atol=1e-5, rtol=4e-6)


@settings_
@given(
    size=sizes,
    mode=st.sampled_from(MODES),
    align=st.sampled_from(ALIGNMENTS),
    antialias=st.booleans(),
    seed=st.integers(0, 2**16),
    backend=st.sampled_from(BACKENDS),
)
def test_identity_size_is_identity(size, mode, align, antialias, seed, backend):
    gen = torch.Generator().manual_seed(seed)
    img = torch.rand(3, *size, generator=gen, dtype=torch.float64)
    options = _options(mode, align, antialias)
    torch.testing.assert_close(run_resize(backend, img, size, **options), img, atol=1e-15, rtol=0)
    img8 = (img * 255).to(torch.uint8)
    assert torch.equal(run_resize(backend, img8, size, **options), img8)


@settings_
@given(
    in_size=st.tuples(st.integers(2, 12), st.integers(2, 12)),
    out_size=sizes,
    slope=st.floats(-3, 3),
    seed=st.integers(0, 99),
    backend=st.sampled_from(BACKENDS),
)
def test_bilinear_align_corners_reproduces_linear_images(in_size, out_size, slope, seed, backend):
    """Linear interpolation is exact on a linear function when no sample leaves the grid."""
    rows = torch.arange(in_size[0], dtype=torch.float64)[:, None]
    cols = torch.arange(in_size[1], dtype=torch.float64)[None, :]
    img = slope * rows + (seed / 10) * cols + 1
    out = run_resize(backend, img, out_size, mode="bilinear", align="align_corners")
    r = torch.linspace(0, in_size[0] - 1, out_size[0], dtype=torch.float64)[:, None]
    c = torch.linspace(0, in_size[1] - 1, out_size[1], dtype=torch.float64)[None, :]
    if out_size[0] == 1:
        r = torch.zeros_like(r)
    if out_size[1] == 1:
        c = torch.zeros_like(c)
    torch.testing.assert_close(out, slope * r + (seed / 10) * c + 1, atol=1e-9, rtol=0)


@settings_
@given(in_size=sizes, out_size=sizes, align=st.sampled_from(ALIGNMENTS), seed=st.integers(0, 99))
def test_nearest_only_copies_input_values(in_size, out_size, align, seed):
    gen = torch.Generator().manual_seed(seed)
    img = torch.randint(0, 1000, in_size, generator=gen).float()
    out = resize(img, out_size, mode="nearest", align=align)
    assert torch.isin(out, img).all()
