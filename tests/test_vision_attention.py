"""The native Phi-4-MM vision tower attends bidirectionally, as SigLIP must (swift_patches/vision_attention.py).

Expected values never come from our code or from transformers' Phi-4-MM port, which marks the tower causal:
- a property of the architecture: in an encoder that sees the whole crop, the last patch influences the first;
- transformers' own `SiglipVisionModel` (unpadded crops) and `Idefics2VisionTransformer` (the NaViT-style SigLIP with
  a patch mask, the design of microsoft's `vision_siglip_navit.py`) loaded with the same weights;
- flash_attention_2 cannot run on a CPU, so its kernel is replaced by one that records the `is_causal` it is handed.
"""

from __future__ import annotations

import pytest
import torch

CPU_ATTENTION = ("eager", "sdpa")


def _load(tiny_model, attn_impl: str):
    """The policy as our ms-swift loader builds it (also what evaluation and the KL reference copy load)."""
    from swift.model import get_model_processor

    model, _ = get_model_processor(
        str(tiny_model), model_type="phi4_mm_native", torch_dtype=torch.float32, attn_impl=attn_impl
    )
    return model.eval()


def _tower(model):
    return model.model.embed_tokens_extend.image_embed.img_processor


def _crops(tower, batch: int = 1, seed: int = 0) -> torch.Tensor:
    size = tower.config.image_size
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _full_mask(tower, pixels: torch.Tensor) -> torch.Tensor:
    side = tower.config.image_size // tower.config.patch_size
    return torch.ones(pixels.shape[0], side, side, dtype=torch.bool)


@pytest.mark.parametrize("attn_impl", CPU_ATTENTION)
def test_the_last_patch_of_an_unpadded_crop_reaches_the_first(tiny_model, swift_plugin, attn_impl):
    tower = _tower(_load(tiny_model, attn_impl))
    pixels = _crops(tower)
    changed = pixels.clone()
    patch = tower.config.patch_size
    changed[:, :, -patch:, -patch:] += 1.0  # the bottom-right patch, the last in raster order
    with torch.no_grad():
        before = tower(pixels, patch_attention_mask=_full_mask(tower, pixels)).last_hidden_state
        after = tower(changed, patch_attention_mask=_full_mask(tower, changed)).last_hidden_state
    assert (after[0, 0] - before[0, 0]).abs().max() > 1e-4, f"{attn_impl}: the first patch never sees the last"


def _reference_weights(tower) -> dict[str, torch.Tensor]:
    """The tower's weights without its pooling head (the image embedding never uses it)."""
    return {key: value for key, value in tower.state_dict().items() if not key.startswith("head.")}


def _sizes(tower) -> dict:
    """The tower's architecture fields, as SigLIP's and Idefics2's vision configs name them."""
    c = tower.config
    fields = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_channels")
    return {
        **{f: getattr(c, f) for f in fields},
        "image_size": c.image_size,
        "patch_size": c.patch_size,
        "hidden_act": c.hidden_act,
        "layer_norm_eps": c.layer_norm_eps,
    }


def _siglip(tower):
    from transformers import SiglipVisionConfig, SiglipVisionModel

    config = SiglipVisionConfig(**_sizes(tower), vision_use_head=False, attn_implementation="eager")
    reference = SiglipVisionModel(config).eval()
    reference.load_state_dict(_reference_weights(tower), strict=True)
    return reference


def _idefics2(tower):
    from transformers import Idefics2VisionConfig
    from transformers.models.idefics2.modeling_idefics2 import Idefics2VisionTransformer

    config = Idefics2VisionConfig(**_sizes(tower))
    config._attn_implementation = "eager"
    reference = Idefics2VisionTransformer(config).eval()
    reference.load_state_dict(_reference_weights(tower), strict=True)
    return reference


@pytest.mark.parametrize("attn_impl", CPU_ATTENTION)
def test_vision_tower_equals_siglip_on_unpadded_crops(tiny_model, swift_plugin, attn_impl):
    tower = _tower(_load(tiny_model, attn_impl))
    pixels = _crops(tower, batch=3)
    with torch.no_grad():
        ours = tower(pixels, patch_attention_mask=_full_mask(tower, pixels)).last_hidden_state
        siglip = _siglip(tower)(pixels).last_hidden_state
    torch.testing.assert_close(ours, siglip, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("attn_impl", CPU_ATTENTION)
def test_vision_tower_equals_navit_siglip_on_padded_crops(tiny_model, swift_plugin, attn_impl):
    tower = _tower(_load(tiny_model, attn_impl))
    pixels = _crops(tower, batch=2, seed=1)
    mask = _full_mask(tower, pixels)
    mask[1, -1:, :] = False  # the second crop is padded at the bottom and the right, as a partial crop is
    mask[1, :, -2:] = False
    pixels[1, :, -tower.config.patch_size :, :] = 0.0
    with torch.no_grad():
        ours = tower(pixels, patch_attention_mask=mask).last_hidden_state
        navit = _idefics2(tower)(pixels, patch_attention_mask=mask).last_hidden_state
    valid = mask.view(2, -1)
    torch.testing.assert_close(ours[valid], navit[valid], atol=1e-5, rtol=1e-4)


def test_flash_attention_2_is_handed_is_causal_false(tiny_model, swift_plugin, monkeypatch):
    """What the flash_attention_2 path receives: the module flag after loading, and the kernel's `is_causal`."""
    import transformers.integrations.flash_attention as flash
    from transformers import PreTrainedModel
    from transformers.models.phi4_multimodal.modeling_phi4_multimodal import Phi4MultimodalVisionAttention

    # As if flash-attn were installed: transformers keeps the requested implementation.
    adjust = PreTrainedModel._check_and_adjust_attn_implementation
    monkeypatch.setattr(
        PreTrainedModel,
        "_check_and_adjust_attn_implementation",
        lambda self, name, *args, **kwargs: (
            name if name == "flash_attention_2" else adjust(self, name, *args, **kwargs)
        ),
    )
    calls = []

    def recording_kernel(query, key, value, attention_mask, *, is_causal, softmax_scale=None, **kwargs):
        calls.append(is_causal)
        # The kernel's layout is [batch, seq, heads, dim]; compute what flash-attn would, on the CPU.
        out = torch.nn.functional.scaled_dot_product_attention(
            query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2), is_causal=is_causal, scale=softmax_scale
        )
        return out.transpose(1, 2)

    monkeypatch.setattr(flash, "_flash_attention_forward", recording_kernel)
    model = _load(tiny_model, "flash_attention_2")
    tower = _tower(model)
    assert tower.config._attn_implementation == "flash_attention_2"
    flags = [m.is_causal for m in tower.modules() if isinstance(m, Phi4MultimodalVisionAttention)]
    assert flags and not any(flags)
    pixels = _crops(tower)
    with torch.no_grad():
        tower(pixels, patch_attention_mask=_full_mask(tower, pixels))
    assert calls == [False] * tower.config.num_hidden_layers


def test_a_model_built_without_the_patch_is_refused():
    from transformers import Phi4MultimodalVisionConfig
    from transformers.models.phi4_multimodal.modeling_phi4_multimodal import Phi4MultimodalVisionModel

    from swift_patches import vision_attention

    vision_attention.install()
    tower = Phi4MultimodalVisionModel(
        Phi4MultimodalVisionConfig(hidden_size=8, intermediate_size=8, num_hidden_layers=1, num_attention_heads=2)
    )
    assert vision_attention.assert_bidirectional(tower) == 1
    next(m for m in tower.modules() if hasattr(m, "is_causal")).is_causal = True
    with pytest.raises(RuntimeError, match="attend causally"):
        vision_attention.assert_bidirectional(tower)


class _FixedUpstream(torch.nn.Module):
    def __init__(self, config):
        super().__init__()
        self.is_causal = False


class _FlagRemoved(torch.nn.Module):
    def __init__(self, config):
        super().__init__()


def test_the_patch_only_asserts_once_transformers_fixes_the_flag(monkeypatch):
    from swift_patches import vision_attention

    monkeypatch.setattr(vision_attention, "_attention_class", lambda: _FixedUpstream)
    original_init = _FixedUpstream.__init__
    assert vision_attention.install() == "fixed upstream"
    assert _FixedUpstream.__init__ is original_init  # nothing wrapped


def test_the_patch_fails_loudly_when_transformers_drops_the_flag(monkeypatch):
    from swift_patches import vision_attention

    monkeypatch.setattr(vision_attention, "_attention_class", lambda: _FlagRemoved)
    with pytest.raises(RuntimeError, match="no longer sets is_causal"):
        vision_attention.install()
