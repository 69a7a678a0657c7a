"""Phi-4-multimodal dynamic-HD image preprocessing without torchvision.

transformers' `Phi4MultimodalImageProcessor` needs torchvision, which has no CPU build on our CI machines, and its
token-count formula hard-codes 448-pixel crops. This module reproduces its crop layout (same crop grid, same
aspect-ratio search, same attention masks, same output keys) with PIL and torch, for any crop size. When
torchvision imports, `load_image_processor` returns transformers' own processor instead, and token counts always
come from `num_image_tokens`, which equals transformers' formula at 448 pixels.

>>> from PIL import Image
>>> proc = Phi4MMImageProcessor(crop_size=56, patch_size=14)
>>> out = proc.preprocess([Image.new("L", (112, 112))])
>>> tuple(out["image_pixel_values"].shape), out["num_img_tokens"]
((1, 5, 3, 56, 56), [27])
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

from utils.env import torchvision_available

logger = logging.getLogger(__name__)


def closest_crop_grid(width: int, height: int, crop_size: int, max_crops: int) -> tuple[int, int]:
    """(columns, rows) of crops for an image, as transformers' `dynamic_preprocess` picks them.

    >>> closest_crop_grid(2000, 2500, 448, 36)
    (5, 6)
    >>> closest_crop_grid(4000, 3000, 448, 36)
    (4, 3)
    """
    columns, rows = math.ceil(width / crop_size), math.ceil(height / crop_size)
    if columns * rows <= max_crops:
        return columns, rows
    aspect_ratio = width / height
    candidates = sorted(
        {(i, j) for i in range(1, max_crops + 1) for j in range(1, max_crops + 1) if i * j <= max_crops},
        key=lambda ratio: ratio[0] * ratio[1],
    )
    best, best_diff = (1, 1), float("inf")
    for ratio in candidates:
        diff = abs(aspect_ratio - ratio[0] / ratio[1])
        if diff < best_diff:
            best, best_diff = ratio, diff
        elif diff == best_diff and width * height > 0.5 * crop_size * crop_size * ratio[0] * ratio[1]:
            best = ratio
    return best


def num_image_tokens(crop_masks: torch.Tensor, columns: int, rows: int) -> int:
    """Image tokens the model's vision embedding emits for one image.

    `crop_masks` is [rows * columns, m, m] (m = crop_size // patch_size), the sub-crop attention masks. The global
    view contributes b rows of b + 1 tokens (b = ceil(m / 2) after 2x2 merging, one newline token a row), one
    separator, then every useful merged row of the sub-crop grid plus its newline. At 448-pixel crops b = 16, so
    this is transformers' `256 + 1 + mask.sum() + mask[:, 0].sum() + 16`.

    >>> num_image_tokens(torch.ones(1, 32, 32), 1, 1)
    545
    """
    m = crop_masks.shape[-1]
    merged = m // 2 + m % 2
    downsampled = crop_masks[:, 0::2, 0::2].reshape(rows, columns, merged, merged).transpose(1, 2)
    downsampled = downsampled.reshape(rows * merged, columns * merged)
    return merged * merged + merged + 1 + int(downsampled.sum().item()) + int(downsampled[:, 0].sum().item())


def crop_layout(width: int, height: int, crop_size: int, patch_size: int, max_crops: int):
    """(columns, rows, resized width, resized height, patch mask) of an image of `width` x `height` pixels: the crop
    grid, the size the image is resized to inside it, and which patches of the grid hold image (1) or padding (0)."""
    columns, rows = closest_crop_grid(width, height, crop_size, max_crops)
    target_w, target_h = crop_size * columns, crop_size * rows
    if target_w / width < target_h / height:
        new_w, new_h = target_w, int(height * target_w / width)
    else:
        new_w, new_h = int(width * target_h / height), target_h
    if min(new_w, new_h) < 10:
        raise ValueError(f"image of {width}x{height} pixels has too extreme an aspect ratio for dynamic HD")
    pad_w, pad_h = target_w - new_w, target_h - new_h
    mask_size = crop_size // patch_size
    mask = torch.ones(mask_size * rows, mask_size * columns)
    if pad_w >= patch_size:
        mask[:, -(pad_w // patch_size) :] = 0
    if pad_h >= patch_size:
        mask[-(pad_h // patch_size) :, :] = 0
    return columns, rows, new_w, new_h, mask


def image_token_count(width: int, height: int, crop_size: int, patch_size: int, max_crops: int) -> int:
    """Image tokens of one image from its size alone (no pixels decoded): what the template inserts for it.

    >>> image_token_count(112, 112, 56, 14, 4), image_token_count(2500, 2048, 448, 14, 4)
    (27, 1164)
    """
    columns, rows, _, _, mask = crop_layout(width, height, crop_size, patch_size, max_crops)
    m = crop_size // patch_size
    crop_masks = mask.reshape(rows, m, columns, m).transpose(1, 2).reshape(-1, m, m)
    return num_image_tokens(crop_masks, columns, rows)


class Phi4MMImageProcessor(BaseImageProcessor):
    """Dynamic-HD crops plus a global view; output keys match transformers' Phi4MultimodalImageProcessor."""

    model_input_names = ["image_pixel_values", "image_sizes", "image_attention_mask"]

    def __init__(
        self,
        crop_size: int = 448,
        patch_size: int = 14,
        dynamic_hd: int = 36,
        image_mean: tuple[float, ...] = (0.5, 0.5, 0.5),
        image_std: tuple[float, ...] = (0.5, 0.5, 0.5),
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.crop_size, self.patch_size, self.dynamic_hd = crop_size, patch_size, dynamic_hd
        self.image_mean, self.image_std = list(image_mean), list(image_std)

    def _crop_one(self, image: Image.Image, dynamic_hd: int) -> tuple[torch.Tensor, torch.Tensor, list[int], int]:
        size, mask_size = self.crop_size, self.crop_size // self.patch_size
        columns, rows, new_w, new_h, mask = crop_layout(*image.size, size, self.patch_size, dynamic_hd)
        target_w, target_h = size * columns, size * rows
        canvas = Image.new("RGB", (target_w, target_h), (255, 255, 255))
        canvas.paste(image.convert("RGB").resize((new_w, new_h), Image.BILINEAR), (0, 0))
        pixels = torch.from_numpy(np.asarray(canvas, dtype=np.float32) / 255.0).permute(2, 0, 1)
        mean = torch.tensor(self.image_mean).view(3, 1, 1)
        std = torch.tensor(self.image_std).view(3, 1, 1)
        pixels = (pixels - mean) / std
        global_view = F.interpolate(pixels[None], size=(size, size), mode="bicubic", align_corners=False)
        crops = pixels.reshape(3, rows, size, columns, size).permute(1, 3, 0, 2, 4).reshape(-1, 3, size, size)
        crop_masks = (
            mask.reshape(rows, mask_size, columns, mask_size).transpose(1, 2).reshape(-1, mask_size, mask_size)
        )
        tokens = num_image_tokens(crop_masks, columns, rows)
        return (
            torch.cat([global_view, crops]),
            torch.cat([torch.ones(1, mask_size, mask_size), crop_masks]),
            [target_h, target_w],
            tokens,
        )

    def preprocess(self, images, return_tensors="pt", dynamic_hd: int | None = None, **kwargs) -> BatchFeature:
        """Crop a batch of PIL images; crop counts are padded to the batch maximum, as transformers does."""
        if isinstance(images, Image.Image):
            images = [images]
        results = [self._crop_one(image, dynamic_hd or self.dynamic_hd) for image in images]
        max_crops = max(pixels.shape[0] for pixels, *_ in results)
        pixel_values = torch.stack(
            [F.pad(pixels, (0, 0, 0, 0, 0, 0, 0, max_crops - pixels.shape[0])) for pixels, *_ in results]
        )
        masks = torch.stack(
            [F.pad(mask, (0, 0, 0, 0, 0, max_crops - mask.shape[0]), value=1) for _, mask, *_ in results]
        )
        return BatchFeature(
            {
                "image_pixel_values": pixel_values,
                "image_attention_mask": masks,
                "image_sizes": torch.tensor([size for *_, size, _ in results], dtype=torch.long),
                "num_img_tokens": [tokens for *_, tokens in results],
            }
        )


def load_image_processor(model_dir: str | Path):
    """transformers' processor when torchvision works, else `Phi4MMImageProcessor`, both from the checkpoint's
    `preprocessor_config.json`."""
    config_path = Path(model_dir) / "preprocessor_config.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    crop_size = int(config.get("size", {}).get("height", 448))
    if torchvision_available():
        from transformers.models.phi4_multimodal.image_processing_phi4_multimodal import Phi4MultimodalImageProcessor

        logger.info("image processor: transformers Phi4MultimodalImageProcessor (torchvision present)")
        return Phi4MultimodalImageProcessor.from_pretrained(str(model_dir))
    logger.info("image processor: torchvision-free Phi4MMImageProcessor (crop %d px)", crop_size)
    return Phi4MMImageProcessor(
        crop_size=crop_size,
        patch_size=int(config.get("patch_size", 14)),
        dynamic_hd=int(config.get("dynamic_hd", 36)),
        image_mean=tuple(config.get("image_mean", (0.5, 0.5, 0.5))),
        image_std=tuple(config.get("image_std", (0.5, 0.5, 0.5))),
    )


def image_token_counts(features: BatchFeature, crop_size: int) -> list[int]:
    """Token count of each image in a processed batch, computed from its masks and sizes (not from the processor's
    own `num_img_tokens`, which transformers hard-codes for 448-pixel crops).

    >>> from PIL import Image
    >>> feats = Phi4MMImageProcessor(crop_size=56).preprocess([Image.new("L", (112, 56)), Image.new("L", (56, 56))])
    >>> image_token_counts(feats, 56)
    [17, 13]
    """
    counts = []
    for mask, (height, width) in zip(features["image_attention_mask"], features["image_sizes"].tolist()):
        rows, columns = height // crop_size, width // crop_size
        counts.append(num_image_tokens(mask[1 : 1 + rows * columns], columns, rows))
    return counts
