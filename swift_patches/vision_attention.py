"""Named patch: transformers' native Phi-4-MM vision tower must attend in both directions.

transformers 5.19's `Phi4MultimodalVisionAttention.__init__` sets `self.is_causal = True`. The tower is SigLIP
(microsoft's `vision_siglip_navit.py`, transformers' `SiglipVisionModel` and `Idefics2VisionTransformer` all attend
bidirectionally), but the attention back ends read that flag:
- sdpa attends causally whenever the batch has no padded crop (`create_bidirectional_mask` then returns no mask);
- flash_attention_2 reads `module.is_causal` directly, so it is causal for every image;
- eager uses the mask alone, so it was right by accident.

`install()` wraps the class's `__init__` so that every instance built afterwards (the policy, ms-swift's KL
reference copy, evaluation engines, the converter's model) carries `is_causal = False`, whatever attention
implementation is dispatched. It fails loudly if transformers no longer has the flag, and if a transformers release
sets it to False itself, it logs that and wraps nothing. `assert_bidirectional(model)` checks a built model.

>>> install() in ("patched", "already patched", "fixed upstream")
True
"""

from __future__ import annotations

import functools

from utils.log import get_logger

logger = get_logger("vision_attention")
_MARK = "_chex_bidirectional_patch"


def _attention_class():
    from transformers.models.phi4_multimodal import modeling_phi4_multimodal

    try:
        return modeling_phi4_multimodal.Phi4MultimodalVisionAttention
    except AttributeError:
        raise RuntimeError(
            "transformers has no Phi4MultimodalVisionAttention any more: re-check swift_patches/vision_attention.py "
            "(the native Phi-4-MM vision tower must attend bidirectionally)"
        ) from None


def _probe_flag(cls) -> object:
    """The `is_causal` value an unpatched instance gets (a 1-layer, 8-wide config: microseconds)."""
    from transformers import Phi4MultimodalVisionConfig

    probe = cls.__new__(cls)
    original = getattr(cls.__init__, "__wrapped__", cls.__init__)
    original(probe, Phi4MultimodalVisionConfig(hidden_size=8, intermediate_size=8, num_attention_heads=2))
    if not hasattr(probe, "is_causal"):
        raise RuntimeError(
            "transformers' Phi4MultimodalVisionAttention no longer sets is_causal: re-check how its attention back "
            "ends decide causality (swift_patches/vision_attention.py)"
        )
    return probe.is_causal


def install() -> str:
    """Make every Phi-4-MM vision attention module built from now on bidirectional (idempotent).

    Returns what happened: `patched`, `already patched`, or `fixed upstream` (transformers sets False itself; then
    nothing is wrapped and `assert_bidirectional` still checks every model).
    """
    cls = _attention_class()
    if getattr(cls.__init__, _MARK, False):
        return "already patched"
    flag = _probe_flag(cls)
    if flag is False:
        logger.info("transformers' Phi-4-MM vision attention is bidirectional already; the patch only asserts")
        return "fixed upstream"
    if flag is not True:
        raise RuntimeError(f"Phi4MultimodalVisionAttention.is_causal is {flag!r}; expected True (the known defect)")
    original_init = cls.__init__

    @functools.wraps(original_init)
    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.is_causal = False  # SigLIP attends in both directions (see the module docstring)

    setattr(__init__, _MARK, True)
    cls.__init__ = __init__
    return "patched"


def assert_bidirectional(model) -> int:
    """Raise unless every Phi-4-MM vision attention module of `model` has `is_causal` False; returns their count.

    >>> import torch
    >>> assert_bidirectional(torch.nn.Linear(1, 1))
    0
    """
    cls = _attention_class()
    causal = [name for name, module in model.named_modules() if isinstance(module, cls) and module.is_causal]
    if causal:
        raise RuntimeError(
            f"{len(causal)} vision attention modules attend causally ({causal[0]}, ...): the model was built before "
            "swift_patches.vision_attention.install() ran"
        )
    return sum(isinstance(module, cls) for module in model.modules())
