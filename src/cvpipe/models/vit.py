"""Vision Transformer (Dosovitskiy et al., 2021): an image as a sequence of 16x16 words.

1. Patch embedding: split the (B, C, H, W) image into (H/P)(W/P) non-overlapping PxP patches
   and project each to D dims, giving (B, N, D) tokens. Two equivalent ways:
   ``patch_embed="conv"``: a PxP conv with stride P (torchvision's ``conv_proj``);
   ``patch_embed="split"``: the paper's literal form, flatten each patch
   (``b c (h p1) (w p2) -> b (h w) (p1 p2 c)``) and apply one ``nn.Linear(P*P*C, D)``.
2. Prepend a learnable class token (B, 1, D); add a learnable position embedding (1, N+1, D).
3. L pre-norm encoder blocks: x = x + MSA(LN(x)); x = x + MLP(LN(x)), MLP = D -> 4D -> D, GELU.
4. Final LayerNorm; pool the class token (``pool="cls"``) or the mean of the patch tokens
   (``pool="mean"``); linear head.

Any input whose sides divide by P works: the position embedding, learnt on a
``img_size / P`` grid, is resampled bicubically to the input's grid (at load time when a
checkpoint's grid differs, at run time when the input size differs). Sizes follow DeiT/ViT:
tiny D=192/3 heads, small D=384/6 heads, base D=768/12 heads, all with 12 blocks. Module
names follow torchvision (``conv_proj``, ``encoder.layers.encoder_layer_i``, ``heads.head``),
so its ``vit_b_16``/``vit_b_32`` weights load unchanged; timm ViT checkpoints (DeiT-Ti/S, ViT-B)
are renamed on load (same maths: pre-norm blocks, packed qkv, LayerNorm eps 1e-6).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from cvpipe.errors import ConfigError
from cvpipe.models.base import Classifier
from cvpipe.models.layers import LayerSpec, create_act
from cvpipe.models.registry import register_model


class MultiHeadSelfAttention(nn.Module):
    """softmax(Q K^T / sqrt(d)) V in ``num_heads`` heads of d = D / heads: (B, N, D) -> (B, N, D).

    Q, K and V come from one packed projection (``in_proj_weight`` (3D, D)), the layout of
    ``nn.MultiheadAttention``, so torchvision's weights load unchanged.
    """

    def __init__(self, dim: int, num_heads: int, attn_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embedding dim {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, N, 3D)
        q, k, v = qkv.reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)  # 3 x (B, h, N, d)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class EncoderBlock(nn.Module):
    """Pre-norm transformer block: (B, N, D) -> (B, N, D)."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, drop: float, attn_drop: float, act_layer: LayerSpec):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=1e-6)
        self.self_attention = MultiHeadSelfAttention(dim, num_heads, attn_drop)
        self.dropout = nn.Dropout(drop)
        self.ln_2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_dim),
            create_act(act_layer, default=nn.GELU),
            nn.Dropout(drop),
            nn.Linear(mlp_dim, dim),
            nn.Dropout(drop),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.self_attention(self.ln_1(x)))
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    """Position embedding + blocks + final LayerNorm: (B, N+1, D) -> (B, N+1, D)."""

    def __init__(self, num_tokens: int, depth: int, dim: int, num_heads: int, mlp_dim: int,
                 drop: float, attn_drop: float, act_layer: LayerSpec):
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, num_tokens, dim).normal_(std=0.02))
        self.dropout = nn.Dropout(drop)
        self.layers = nn.Sequential(OrderedDict(
            (f"encoder_layer_{i}", EncoderBlock(dim, num_heads, mlp_dim, drop, attn_drop, act_layer))
            for i in range(depth)
        ))
        self.ln = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor, pos_embedding: torch.Tensor) -> torch.Tensor:
        return self.ln(self.layers(self.dropout(x + pos_embedding)))


def resample_pos_embed(pos: torch.Tensor, new_grid: tuple[int, int], num_prefix: int = 1) -> torch.Tensor:
    """Bicubically resize the patch part of a (1, prefix + h*w, D) position embedding to ``new_grid``.

    The old grid is taken as square (h = w = sqrt(number of patch positions)), as in every
    released ViT checkpoint. Prefix tokens (the class token's embedding) are kept as they are.
    """
    prefix, grid = pos[:, :num_prefix], pos[:, num_prefix:]
    old = int(math.isqrt(grid.shape[1]))
    if old * old != grid.shape[1]:
        raise ValueError(f"cannot resample a position embedding of {grid.shape[1]} patches: not a square grid")
    if (old, old) == tuple(new_grid):
        return pos
    d = grid.shape[-1]
    grid = grid.reshape(1, old, old, d).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=new_grid, mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], d).to(pos.dtype)
    return torch.cat([prefix, grid], dim=1)


class VisionTransformer(Classifier):
    """Shape: (B, in_chans, H, W) -> tokens (B, 1 + HW/P^2, D) -> logits (B, num_classes)."""

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        img_size: int = 224,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        patch_embed: str = "conv",
        pool: str = "cls",
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        act_layer: LayerSpec = "",
    ):
        super().__init__()
        if patch_embed not in ("conv", "split"):
            raise ConfigError(f"model.kwargs.patch_embed: expected conv or split, got {patch_embed!r}")
        if pool not in ("cls", "mean"):
            raise ConfigError(f"model.kwargs.pool: expected cls or mean, got {pool!r}")
        if img_size % patch_size:
            raise ConfigError(f"ViT: img_size {img_size} is not divisible by the patch size {patch_size}")
        self.num_classes = num_classes
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.pool = pool
        self.patch_embed = patch_embed
        self.grid = (img_size // patch_size, img_size // patch_size)
        self.num_prefix_tokens = 1
        self.num_features = embed_dim

        if patch_embed == "conv":
            self.conv_proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
            fan_in = in_chans * patch_size * patch_size
            nn.init.normal_(self.conv_proj.weight, std=math.sqrt(1 / fan_in))  # LeCun normal
            nn.init.zeros_(self.conv_proj.bias)
        else:
            self.patch_proj = nn.Linear(in_chans * patch_size * patch_size, embed_dim)
        self.class_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.encoder = Encoder(self.grid[0] * self.grid[1] + 1, depth, embed_dim, num_heads,
                               int(embed_dim * mlp_ratio), drop_rate, attn_drop_rate, act_layer)
        self.head_drop = nn.Dropout(drop_rate)
        self.heads = nn.Sequential(OrderedDict(head=self._make_head(num_classes)))

        last = f"encoder.layers.encoder_layer_{depth - 1}"
        # CAM on ViT: the last block's first LayerNorm, as pytorch-grad-cam recommends; the
        # (B, N, D) tokens become a (B, D, h, w) map with ``tokens_to_map``.
        self.default_cam_layer = f"{last}.ln_1"
        self.stem_names = ("conv_proj", "patch_proj", "class_token", "encoder.pos_embedding")
        self.stage_names = tuple(f"encoder.layers.encoder_layer_{i}" for i in range(depth))
        self.head_names = ("heads",)
        self._init_linears()
        self.register_load_state_dict_pre_hook(_adapt_vit_state_dict)

    def _make_head(self, num_classes: int) -> nn.Module:
        return nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def _init_linears(self) -> None:
        # Xavier-uniform weights and zero biases, as in the paper's reference (JAX) code.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, N, D) patch tokens."""
        b, c, h, w = x.shape
        p = self.patch_size
        if h % p or w % p:
            raise ConfigError(f"ViT: input size {h}x{w} is not divisible by the patch size {p}; "
                              f"use an image size that is a multiple of {p}")
        if self.patch_embed == "conv":
            return self.conv_proj(x).flatten(2).transpose(1, 2)
        # b c (h p1) (w p2) -> b (h w) (p1 p2 c)
        patches = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
        return self.patch_proj(patches.reshape(b, (h // p) * (w // p), p * p * c))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        grid = (x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size)
        tokens = self._embed(x)
        cls = self.class_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1)
        pos = self.encoder.pos_embedding
        if grid != self.grid:
            pos = resample_pos_embed(pos, grid)  # learnt on self.grid; bicubic to this input's grid
        return self.encoder(tokens, pos)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x[:, 0] if self.pool == "cls" else x[:, self.num_prefix_tokens:].mean(dim=1)
        return x if pre_logits else self.heads(self.head_drop(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.heads.head = self._make_head(num_classes)

    def adapt_state_dict(self, state_dict: dict) -> dict:
        """Translate a timm ViT or another resolution / patch-embedding form to this model."""
        return adapt_vit_state_dict(self, state_dict)

    def tokens_to_map(self, tokens: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
        """(B, 1 + h*w, D) tokens of an image of size ``image_hw`` -> (B, D, h, w) map (for CAM)."""
        h, w = image_hw[0] // self.patch_size, image_hw[1] // self.patch_size
        patches = tokens[:, self.num_prefix_tokens:]
        return patches.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[-1], h, w)


def _adapt_vit_state_dict(module: "VisionTransformer", state_dict: dict, prefix: str, *args) -> None:
    # load_state_dict pre-hook: plain ``model.load_state_dict(foreign_sd)`` adapts too.
    adapt_vit_state_dict(module, state_dict, prefix)


_TIMM_BLOCK_KEYS = {
    "norm1": "ln_1",
    "attn.qkv.weight": "self_attention.in_proj_weight",
    "attn.qkv.bias": "self_attention.in_proj_bias",
    "attn.proj": "self_attention.out_proj",
    "norm2": "ln_2",
    "mlp.fc1": "mlp.0",
    "mlp.fc2": "mlp.3",
}
_TIMM_TOP_KEYS = {
    "cls_token": "class_token",
    "pos_embed": "encoder.pos_embedding",
    "patch_embed.proj": "conv_proj",
    "norm": "encoder.ln",
    "head": "heads.head",
}


def _rename_timm(state_dict: dict, prefix: str) -> None:
    """timm ``VisionTransformer`` names -> ours (same maths: pre-norm, packed qkv, LN eps 1e-6)."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        rest = key[len(prefix):]
        new = None
        if rest.startswith("blocks."):
            _, idx, tail = rest.split(".", 2)
            for old, ours in _TIMM_BLOCK_KEYS.items():
                if tail == old or tail.startswith(old + "."):
                    new = f"encoder.layers.encoder_layer_{idx}.{ours}{tail[len(old):]}"
                    break
        else:
            for old, ours in _TIMM_TOP_KEYS.items():
                if rest == old or rest.startswith(old + "."):
                    new = ours + rest[len(old):]
                    break
        if new is not None:
            state_dict[prefix + new] = state_dict.pop(key)


def adapt_vit_state_dict(model: "VisionTransformer", state_dict: dict, prefix: str = "") -> dict:
    """Make a ViT checkpoint fit ``model``, in place: timm key names, the position-embedding
    grid, and the patch-embedding form (``conv_proj`` conv <-> ``patch_proj`` Linear)."""
    if prefix + "blocks.0.attn.qkv.weight" in state_dict:
        _rename_timm(state_dict, prefix)
    key = prefix + "encoder.pos_embedding"
    own = model.encoder.pos_embedding
    if key in state_dict and state_dict[key].shape != own.shape and state_dict[key].shape[-1] == own.shape[-1]:
        state_dict[key] = resample_pos_embed(state_dict[key], model.grid)
    p, c = model.patch_size, model.in_chans
    conv_w, lin_w = prefix + "conv_proj.weight", prefix + "patch_proj.weight"
    if model.patch_embed == "split" and conv_w in state_dict:
        w = state_dict.pop(conv_w)  # (D, C, p, p) -> (D, p*p*C), the (p1 p2 c) order of _embed
        state_dict[lin_w] = w.permute(0, 2, 3, 1).reshape(w.shape[0], -1)
        state_dict[prefix + "patch_proj.bias"] = state_dict.pop(prefix + "conv_proj.bias")
    elif model.patch_embed == "conv" and lin_w in state_dict and state_dict[lin_w].shape[1] == p * p * c:
        w = state_dict.pop(lin_w)
        state_dict[conv_w] = w.reshape(w.shape[0], p, p, c).permute(0, 3, 1, 2)
        state_dict[prefix + "conv_proj.bias"] = state_dict.pop(prefix + "patch_proj.bias")
    return state_dict


_SIZES = {"ti": (192, 3), "s": (384, 6), "b": (768, 12)}


def _vit(size: str, patch: int, num_classes: int, in_chans: int, **kwargs) -> VisionTransformer:
    dim, heads = _SIZES[size]
    return VisionTransformer(num_classes, in_chans, patch_size=patch, embed_dim=dim, depth=12, num_heads=heads, **kwargs)


@register_model
def vit_ti_16(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VisionTransformer:
    """ViT-Tiny/16 (DeiT-Ti): D=192, 12 blocks, 3 heads, 16x16 patches."""
    return _vit("ti", 16, num_classes, in_chans, **kwargs)


@register_model
def vit_ti_32(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VisionTransformer:
    """ViT-Tiny/32: D=192, 12 blocks, 3 heads, 32x32 patches."""
    return _vit("ti", 32, num_classes, in_chans, **kwargs)


@register_model
def vit_s_16(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VisionTransformer:
    """ViT-Small/16 (DeiT-S): D=384, 12 blocks, 6 heads, 16x16 patches."""
    return _vit("s", 16, num_classes, in_chans, **kwargs)


@register_model
def vit_s_32(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VisionTransformer:
    """ViT-Small/32: D=384, 12 blocks, 6 heads, 32x32 patches."""
    return _vit("s", 32, num_classes, in_chans, **kwargs)


@register_model
def vit_b_16(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VisionTransformer:
    """ViT-Base/16: D=768, 12 blocks, 12 heads, 16x16 patches."""
    return _vit("b", 16, num_classes, in_chans, **kwargs)


@register_model
def vit_b_32(num_classes: int = 1000, in_chans: int = 3, **kwargs) -> VisionTransformer:
    """ViT-Base/32: D=768, 12 blocks, 12 heads, 32x32 patches."""
    return _vit("b", 32, num_classes, in_chans, **kwargs)
