"""vLLM 0.32 adapter for `phi4_mm_native`: the model class, its multimodal processor and the engine overrides.

vLLM 0.32 no longer has transformers' native `Phi4MultimodalForCausalLM` (it resolves the architecture to its
text-only backend and fails only when an image arrives), and its `Phi4MMForCausalLM` hard-codes the release's
448-pixel SigLIP and microsoft's remote-code processor. This registers `CheXPhi4MMNativeForCausalLM`:

- the language model is vLLM's `LlamaModel` (paged attention, fused qkv / gate_up, partial rotary: what vLLM's
  Phi-4-MM runs), with the native checkpoint's names;
- the image embedding is transformers' own `Phi4MultimodalImageEmbedding` module, bidirectional
  (`swift_patches.vision_attention`), sized from the checkpoint's config;
- the vision LoRA is merged into the weights vLLM holds (`utils.checkpoints.vision_lora`), from `vision-lora/` when
  the checkpoint loads and from the policy's own LoRA tensors at every GRPO weight sync: what vLLM runs is the model
  we train. Every prompt must carry an image (the merged weights answer a text-only prompt differently from
  microsoft's model, which turns the vision LoRA off without an image); `Phi4MMNativeTemplate` refuses one;
- the processor is our torchvision-free image processor: images go in as PIL images, the prompt holds one image
  placeholder token (`vision_config.image_token_id`) per image, expanded here to that image's token count.

Engines get it through `engine_overrides()` (architecture override + vLLM's `model_class_overrides`), which
registers the class in every process that builds one: the trainer's colocated engine, `swift rollout`, and the
evaluation engine's own process. `utils.vllm_env.check_engine` stops a run whose engine resolved anything else.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import BatchFeature
from vllm.config import VllmConfig
from vllm.config.multimodal import MultiModalDummyOptions
from vllm.model_executor.layers.logits_processor import LogitsProcessor
from vllm.model_executor.layers.vocab_parallel_embedding import ParallelLMHead
from vllm.model_executor.models.interfaces import MultiModalEmbeddings, SupportsMultiModal
from vllm.model_executor.models.llama import LlamaModel
from vllm.model_executor.models.utils import AutoWeightsLoader, WeightsMapper, maybe_prefix
from vllm.multimodal import MULTIMODAL_REGISTRY
from vllm.multimodal.inputs import MultiModalFieldConfig, MultiModalKwargsItems
from vllm.multimodal.parse import ImageProcessorItems, ImageSize, MultiModalDataItems
from vllm.multimodal.processing import BaseDummyInputsBuilder
from vllm.multimodal.processing.processor import (
    BaseMultiModalProcessor,
    BaseProcessingInfo,
    PromptReplacement,
    PromptUpdate,
)

from swift_patches import vision_attention
from swift_patches.image_processor import image_token_count, image_token_counts, load_image_processor
from utils.checkpoints.phi4mm import IMAGE_TOKEN
from utils.checkpoints.vision_lora import VisionLora, VisionLoraError, VisionLoraMerger
from utils.env import env_flag, env_int
from utils.log import get_logger
from utils.vllm_env import ARCHITECTURE, project_pythonpath

logger = get_logger("vllm_phi4mm")

CLASS_TARGET = f"{__name__}:{ARCHITECTURE}"
VISION_LORA_DIR = "vision-lora"
# The native names vLLM holds under other names: the image embedding sits beside vLLM's `model` (its LlamaModel).
# The audio tower is not built: phi4_mm_native runs images only.
NATIVE_TO_VLLM = WeightsMapper(
    orig_to_new_prefix={
        "model.embed_tokens_extend.image_embed.": "embed_tokens_extend.image_embed.",
        "model.embed_tokens_extend.audio_embed.": None,
    }
)


def engine_overrides() -> dict[str, Any]:
    """vLLM engine arguments that run a native checkpoint on this adapter, in whichever process builds the engine.

    vLLM imports the class by name (`CLASS_TARGET`) in the processes it starts, some of them plain subprocesses:
    the project's root goes on `PYTHONPATH`, which they inherit.

    >>> engine_overrides()["hf_overrides"]
    {'architectures': ['CheXPhi4MMNativeForCausalLM']}
    """
    os.environ["PYTHONPATH"] = project_pythonpath()
    return {"hf_overrides": {"architectures": [ARCHITECTURE]}, "model_class_overrides": {ARCHITECTURE: CLASS_TARGET}}


def _dynamic_hd(image_processor) -> int:
    """The crop count: `DYNAMIC_HD` when set (as the training template reads it), else the checkpoint's."""
    return env_int("DYNAMIC_HD", default=0) or int(image_processor.dynamic_hd)


class CheXPhi4MMProcessingInfo(BaseProcessingInfo):
    """Image-only processing with the checkpoint's own crop settings."""

    @cached_property
    def image_processor(self):
        processor = load_image_processor(self.model_id)
        processor.dynamic_hd = _dynamic_hd(processor)
        return processor

    @property
    def crop_size(self) -> int:
        processor = self.image_processor
        return int(getattr(processor, "crop_size", None) or processor.size["height"])

    @property
    def image_token_id(self) -> int:
        return int(self.get_hf_config().vision_config.image_token_id)

    def get_supported_mm_limits(self) -> Mapping[str, int | None]:
        return {"image": None}

    def get_supported_mm_processor_kwargs(self) -> dict[str, set[str]]:
        return {}

    def get_num_image_tokens(self, width: int, height: int) -> int:
        patch = int(getattr(self.image_processor, "patch_size", 14))
        return image_token_count(width, height, self.crop_size, patch, self.image_processor.dynamic_hd)

    def get_image_size_with_most_features(self) -> ImageSize:
        return ImageSize(width=self.crop_size, height=self.crop_size * self.image_processor.dynamic_hd)


class CheXPhi4MMDummyInputsBuilder(BaseDummyInputsBuilder[CheXPhi4MMProcessingInfo]):
    def get_dummy_text(self, mm_counts: Mapping[str, int]) -> str:
        return IMAGE_TOKEN * mm_counts.get("image", 0)

    def get_dummy_mm_data(self, seq_len: int, mm_counts: Mapping[str, int], mm_options: MultiModalDummyOptions):
        size = self.info.get_image_size_with_most_features()
        return {
            "image": self._get_dummy_images(
                width=size.width,
                height=size.height,
                num_images=mm_counts.get("image", 0),
                overrides=mm_options.get("image"),
            )
        }


class CheXPhi4MMMultiModalProcessor(BaseMultiModalProcessor[CheXPhi4MMProcessingInfo]):
    """Crops with our image processor; one placeholder token per image becomes that image's run of tokens."""

    def _call_hf_processor(self, hf_data: Mapping[str, object], hf_kwargs: Mapping[str, object]) -> BatchFeature:
        images = hf_data.get("images") or []
        features = self.info.image_processor(images, return_tensors="pt")
        counts = image_token_counts(features, self.info.crop_size)
        return BatchFeature(
            {
                "image_pixel_values": features["image_pixel_values"],
                "image_attention_mask": features["image_attention_mask"],
                "image_sizes": features["image_sizes"],
                "num_img_tokens": torch.tensor(counts, dtype=torch.long),
            }
        )

    def _get_mm_fields_config(
        self, hf_inputs: BatchFeature, hf_kwargs: Mapping[str, object]
    ) -> Mapping[str, MultiModalFieldConfig]:
        return {
            "image_pixel_values": MultiModalFieldConfig.batched("image"),
            "image_attention_mask": MultiModalFieldConfig.batched("image"),
            "image_sizes": MultiModalFieldConfig.batched("image", keep_on_cpu=True),
            "num_img_tokens": MultiModalFieldConfig.batched("image", keep_on_cpu=True),
        }

    def _get_prompt_updates(
        self,
        mm_items: MultiModalDataItems,
        hf_processor_mm_kwargs: Mapping[str, Any],
        out_mm_kwargs: MultiModalKwargsItems,
    ) -> Sequence[PromptUpdate]:
        image_token_id = self.info.image_token_id

        def replacement(item_idx: int) -> list[int]:
            size = mm_items.get_items("image", ImageProcessorItems).get_image_size(item_idx)
            return [image_token_id] * self.info.get_num_image_tokens(size.width, size.height)

        return [PromptReplacement(modality="image", target=[image_token_id], replacement=replacement)]


def _pad_crops(tensors: Sequence[torch.Tensor], value: float) -> torch.Tensor:
    """Stack per-image tensors (crops first) padded to the most crops, as the training collator pads them."""
    most = max(t.shape[0] for t in tensors)
    padded = [torch.cat([t, t.new_full((most - t.shape[0], *t.shape[1:]), value)]) for t in tensors]
    return torch.stack(padded)


@MULTIMODAL_REGISTRY.register_processor(
    CheXPhi4MMMultiModalProcessor, info=CheXPhi4MMProcessingInfo, dummy_inputs=CheXPhi4MMDummyInputsBuilder
)
class CheXPhi4MMNativeForCausalLM(nn.Module, SupportsMultiModal):
    """Native Phi-4-multimodal in vLLM: vLLM's Llama decoder, transformers' image embedding, vision LoRA merged."""

    packed_modules_mapping = {"qkv_proj": ["qkv_proj"], "gate_up_proj": ["gate_up_proj"]}
    hf_to_vllm_mapper = NATIVE_TO_VLLM

    @classmethod
    def get_placeholder_str(cls, modality: str, i: int) -> str | None:
        if modality.startswith("image"):
            return IMAGE_TOKEN
        raise ValueError(f"phi4_mm_native on vLLM supports images only, not {modality}")

    def __init__(self, *, vllm_config: VllmConfig, prefix: str = "") -> None:
        super().__init__()
        from transformers.models.phi4_multimodal.modeling_phi4_multimodal import Phi4MultimodalImageEmbedding

        config = vllm_config.model_config.hf_config
        self.config = config
        model_dir = Path(vllm_config.model_config.model)
        lora_dir = model_dir / VISION_LORA_DIR
        use_lora = env_flag("PHI4MM_VISION_LORA", True) and lora_dir.is_dir()
        self._merger = VisionLoraMerger(VisionLora.from_folder(lora_dir)) if use_lora else None
        self._weights_loaded = False
        self._model_config = vllm_config.model_config

        vision_attention.install()  # before the module is built: SigLIP attends bidirectionally
        config.vision_config._attn_implementation = "sdpa"
        with self._mark_tower_model(vllm_config, "image"):
            self.embed_tokens_extend = nn.Module()
            self.embed_tokens_extend.image_embed = Phi4MultimodalImageEmbedding(config).eval()
        vision_attention.assert_bidirectional(self.embed_tokens_extend.image_embed)
        with self._mark_language_model(vllm_config):
            self.model = LlamaModel(vllm_config=vllm_config, prefix=maybe_prefix(prefix, "model"))
        self.lm_head = ParallelLMHead(config.vocab_size, config.hidden_size, prefix=maybe_prefix(prefix, "lm_head"))
        if config.tie_word_embeddings:
            self.lm_head = self.lm_head.tie_weights(self.model.embed_tokens)
        self.logits_processor = LogitsProcessor(config.vocab_size)

    def embed_multimodal(self, **kwargs: object) -> MultiModalEmbeddings:
        pixels = kwargs.get("image_pixel_values")
        if pixels is None:
            return []
        pixels = list(pixels) if not isinstance(pixels, torch.Tensor) else list(pixels.unbind(0))
        masks = kwargs["image_attention_mask"]
        masks = list(masks) if not isinstance(masks, torch.Tensor) else list(masks.unbind(0))
        sizes = torch.as_tensor([list(map(int, s)) for s in kwargs["image_sizes"]], dtype=torch.long)
        counts = [int(c) for c in kwargs["num_img_tokens"]]
        embed = self.embed_tokens_extend.image_embed
        hidden = self.config.hidden_size
        dtype = embed.img_projection_up.weight.dtype
        device = embed.img_projection_up.weight.device
        # transformers' forward writes the images' embeddings, in order, at the placeholder positions of the
        # sequence it is given: a sequence of placeholders only yields them as they are.
        placeholders = torch.full((1, sum(counts)), self.config.vision_config.image_token_id, device=device)
        embeddings = embed(
            input_ids=placeholders,
            inputs_embeds=torch.zeros(1, sum(counts), hidden, dtype=dtype, device=device),
            image_pixel_values=_pad_crops(pixels, 0.0).to(device),
            image_sizes=sizes.to(device),
            image_attention_mask=_pad_crops(masks, 1.0).to(device),
        )
        return tuple(embeddings.reshape(-1, hidden).split(counts))

    def forward(
        self,
        input_ids: torch.Tensor | None,
        positions: torch.Tensor,
        intermediate_tensors=None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: object,
    ) -> torch.Tensor:
        self._check_complete()
        return self.model(input_ids, positions, intermediate_tensors, inputs_embeds=inputs_embeds)

    def compute_logits(self, hidden_states: torch.Tensor) -> torch.Tensor | None:
        return self.logits_processor(self.lm_head, hidden_states)

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        """Native weights in, vision LoRA merged: from `vision-lora/` at the checkpoint's load (the first call), from
        the LoRA tensors that come with the weights at every later call (ms-swift's weight sync, in PEFT's saved
        names). A sync may split a module's base weight and LoRA across calls (buckets): the module is loaded once
        all three have come, and no token is generated while one waits (`forward`). A sync goes through vLLM's
        in-place reload, which restores the layers whose kernels repacked their weights (vLLM's CPU linears)."""
        from vllm.model_executor.model_loader.reload import finalize_layerwise_reload, initialize_layerwise_reload

        weights = dict(weights)
        first_load = not self._weights_loaded
        if self._merger is not None:
            if first_load:
                own = self._merger.lora.tensors
                self._merger.feed({f"{module}.lora_{ab}.weight": tensor for module, ab, tensor in own})
            weights = self._merger.feed(weights)
        else:
            weights = {name.removeprefix("base_model.model."): tensor for name, tensor in weights.items()}
        tied = ["lm_head."] if self.config.tie_word_embeddings else None  # the embedding, loaded under its own name
        loader = AutoWeightsLoader(self, ignore_unexpected_prefixes=tied)
        if first_load:
            self._weights_loaded = True
            loaded = loader.load_weights(weights.items(), mapper=self.hf_to_vllm_mapper)
            self._check_complete()
            return loaded
        initialize_layerwise_reload(self)
        try:
            return loader.load_weights(weights.items(), mapper=self.hf_to_vllm_mapper)
        finally:
            finalize_layerwise_reload(self, self._model_config)

    def _check_complete(self) -> None:
        """Stop if a LoRA'd module is still missing its base weight or a LoRA half: its weights would be stale."""
        if self._merger is not None and self._merger.incomplete():
            module, parts = self._merger.incomplete()[0]
            raise VisionLoraError(
                f"{len(self._merger.incomplete())} vision-LoRA modules did not get their base weight and both LoRA "
                f"halves (first: {module}, got {parts}); vLLM would run stale weights. A model whose vision LoRA is "
                "not active (a PEFT tuner over it, TUNER_TYPE=lora) cannot be merged"
            )
