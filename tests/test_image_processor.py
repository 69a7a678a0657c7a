"""The torchvision-free Phi-4-MM image processor against transformers' own crop layout and token formula."""

from __future__ import annotations

import ast
import importlib.util
import math
import types
from pathlib import Path

import pytest
import torch
from PIL import Image

from swift_patches.image_processor import Phi4MMImageProcessor, image_token_counts

SIZES = [(448, 448), (500, 375), (1024, 768), (2000, 2500), (3000, 1000), (4000, 3000), (100, 700)]


def _transformers_crop_functions():
    """transformers' own `find_closest_aspect_ratio` and `dynamic_preprocess`, taken from its source file and run
    with torch stand-ins for the two torchvision calls (which only touch pixels, not the crop grid or mask)."""
    spec = importlib.util.find_spec("transformers.models.phi4_multimodal.image_processing_phi4_multimodal")
    tree = ast.parse(Path(spec.origin).read_text())
    cls = next(
        node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Phi4MultimodalImageProcessor"
    )
    wanted = {"find_closest_aspect_ratio", "dynamic_preprocess"}
    module = ast.Module(
        body=[f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name in wanted], type_ignores=[]
    )
    tv_functional = types.SimpleNamespace(
        resize=lambda image, size: image.new_zeros(image.shape[0], *size), pad=lambda image, padding, fill: image
    )
    namespace = {"math": math, "torch": torch, "tvF": tv_functional}
    exec(compile(module, spec.origin, "exec"), namespace)
    owner = types.SimpleNamespace()
    owner.find_closest_aspect_ratio = types.MethodType(namespace["find_closest_aspect_ratio"], owner)
    return types.MethodType(namespace["dynamic_preprocess"], owner)


def _transformers_token_count(attention_mask: torch.Tensor, mask_size: int = 32) -> int:
    # The lines of transformers' `_preprocess` that count tokens, verbatim in meaning (448-pixel crops).
    mask_height, mask_width = attention_mask.shape[-2:]
    reshaped = attention_mask.reshape(mask_height // mask_size, mask_size, mask_width // mask_size, mask_size)
    reshaped = reshaped.transpose(1, 2).reshape(-1, mask_size, mask_size)
    down = reshaped[:, 0::2, 0::2].reshape(mask_height // mask_size, mask_width // mask_size, 16, 16)
    down = down.transpose(1, 2)
    down = down.reshape(down.size(0) * down.size(1), down.size(2) * down.size(3))
    return 256 + 1 + int(down.sum().item()) + int(down[:, 0].sum().item()) + 16


@pytest.mark.parametrize("width,height", SIZES)
def test_token_count_matches_transformers_at_448(width, height):
    dynamic_preprocess = _transformers_crop_functions()
    _, hf_mask = dynamic_preprocess(torch.zeros(3, height, width), 448, 14, 32, max_num=36)
    ours = Phi4MMImageProcessor(crop_size=448).preprocess([Image.new("RGB", (width, height))])
    assert ours["num_img_tokens"] == [_transformers_token_count(hf_mask)]
    assert image_token_counts(ours, 448) == ours["num_img_tokens"]
    rows, columns = (s // 448 for s in ours["image_sizes"][0].tolist())
    assert torch.equal(
        hf_mask.reshape(rows, 32, columns, 32).transpose(1, 2).reshape(-1, 32, 32), ours["image_attention_mask"][0, 1:]
    )


def test_any_crop_size_batches_pad_crops():
    proc = Phi4MMImageProcessor(crop_size=56, patch_size=14)
    out = proc.preprocess([Image.new("L", (112, 112)), Image.new("L", (56, 56))])
    assert out["image_pixel_values"].shape == (2, 5, 3, 56, 56)
    assert out["image_sizes"].tolist() == [[112, 112], [56, 56]]
    assert out["num_img_tokens"] == [27, 13]
