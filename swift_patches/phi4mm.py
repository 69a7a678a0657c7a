"""Native Phi-4-multimodal (transformers' `Phi4MultimodalForCausalLM`) as an ms-swift 4.6 model type and template.

ms-swift's own `phi4_multimodal` type targets microsoft's remote-code model (transformers < 4.49), so it cannot run
on the pinned stack. This registers `phi4_mm_native` through ms-swift's public `register_model` /
`register_template`:

- the loader builds the processor (transformers' image processor when torchvision imports, else the
  torchvision-free one) and attaches the checkpoint's `vision-lora/` PEFT folder as adapter `vision`, which is how
  the remote-code model always ran (its vision LoRA is part of the model). `PHI4MM_VISION_LORA=0` skips it.
  Sampling never emits the image / audio placeholders (see `suppress_placeholder_tokens`).
- the template writes exactly the prompts of ms-swift's `phi4_multimodal` template, which the CheX-Phi4MM SFT
  checkpoint was trained with (`<|user|>\n{query}<|end|>\n<|assistant|>\n`: we register ms-swift's own
  `Phi3TemplateMeta`), and expands each `<image>` into that image's run of image placeholders. The placeholder id is
  `config.vision_config.image_token_id` (`<|endoftext10|>`, 200010, in the release), never looked up by string. It
  passes `image_pixel_values`, `image_sizes`, `image_attention_mask` (processed features memoised by pixel
  content); the collator pads the crop dimension across a batch.
- the crop count (`dynamic_hd`) is the `DYNAMIC_HD` environment variable when set, else the checkpoint's
  `preprocessor_config.json`; our trainer records it in every checkpoint's `chex_run.json` (ms-swift copies the
  source model's `preprocessor_config.json` into checkpoints).
- the vision tower attends bidirectionally, as SigLIP must: transformers 5.19 marks it causal
  (`swift_patches/vision_attention.py`, installed by `register()` and asserted on every model the loader builds).
- audio is not wired up: an audio input raises a clear error instead of being dropped.
- in vLLM mode (rollouts and evaluation on vLLM, `swift_patches/vllm_phi4mm.py`) each `<image>` becomes one
  placeholder token that vLLM's processor expands, and a prompt without an image is refused (`VLLM_TEXT_ONLY`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import types
from collections import OrderedDict
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from swift.model import Model, ModelGroup, ModelLoader, ModelMeta, register_model
from swift.template import Template, TemplateMeta, register_template
from swift.template.templates.microsoft import Phi3TemplateMeta
from swift.template.utils import findall
from transformers import AutoTokenizer, PretrainedConfig

from swift_patches import vision_attention
from swift_patches.image_processor import image_token_counts, load_image_processor
from utils.checkpoints.phi4mm import NATIVE_MODEL_TYPE, PROMPT_FORMATS, VLLM_TEXT_ONLY
from utils.env import env_flag, env_int
from utils.io import apply_umask
from utils.log import get_logger

logger = get_logger("phi4mm")

MODEL_TYPE = TEMPLATE_TYPE = NATIVE_MODEL_TYPE
VISION_LORA_DIR = "vision-lora"
VISION_ADAPTER = "vision"
IMAGE_KEYS = ("image_pixel_values", "image_sizes", "image_attention_mask")


def dynamic_hd_override() -> int | None:
    """The crop count from the environment (`DYNAMIC_HD`), or None to keep the checkpoint's."""
    value = env_int("DYNAMIC_HD", default=0)
    if value < 0:
        raise ValueError(f"DYNAMIC_HD={value}: image crops must be positive (or 0: the checkpoint's setting)")
    return value or None


def vision_lora_enabled() -> bool:
    """Whether the loader attaches `vision-lora/` (env `PHI4MM_VISION_LORA`, default on)."""
    return env_flag("PHI4MM_VISION_LORA", default=True)


def save_native_layout(model, save_directory, state_dict=None, **kwargs) -> None:
    """`save_pretrained` for a model carrying the vision adapter: native base weights in `save_directory` and the
    (trained) adapter in `save_directory/vision-lora/`, the layout the loader reads back.

    transformers alone would save only the adapter of a model with adapters loaded, so a full or `dummy`-tuner
    checkpoint would lose its base weights.
    """
    cls = type(model)
    state_dict = model.state_dict() if state_dict is None else state_dict
    # Split before saving: transformers' adapter save rewrites the keys of the dict it is handed.
    base_state = {key.replace(".base_layer.", "."): value for key, value in state_dict.items() if ".lora_" not in key}
    adapter_state = {key: value for key, value in state_dict.items() if ".lora_" in key}
    cls.save_pretrained(model, os.path.join(save_directory, VISION_LORA_DIR), state_dict=adapter_state, **kwargs)
    model._hf_peft_config_loaded = False  # save as a plain model for the base weights, then restore
    try:
        # The adapter load registered a key conversion ("base_model.model." prefix) that must not touch base weights.
        cls.save_pretrained(model, save_directory, state_dict=base_state, save_original_format=False, **kwargs)
    finally:
        model._hf_peft_config_loaded = True
    # safetensors 0.8 writes its files 0600 whatever the umask; give them the mode the rest of the folder has.
    for weights in (
        *Path(save_directory).glob("*.safetensors"),
        *Path(save_directory, VISION_LORA_DIR).glob("*.safetensors"),
    ):
        apply_umask(weights)


def _checkpoint_tensors(folder: Path, single: str, index: str) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors checkpoint, single file or sharded (with its index)."""
    from safetensors.torch import load_file

    if (folder / single).is_file():
        return load_file(str(folder / single))
    if (folder / index).is_file():
        import json

        shards = sorted(set(json.loads((folder / index).read_text())["weight_map"].values()))
        return {key: value for shard in shards for key, value in load_file(str(folder / shard)).items()}
    raise FileNotFoundError(f"{folder}: neither {single} nor {index}")


def load_native_layout(model, checkpoint_dir: str | os.PathLike) -> int:
    """The inverse of `save_native_layout`: load every weight of a model carrying the vision adapter from a checkpoint
    folder (base weights under their native names, the adapter from `vision-lora/`), strictly. Returns the number of
    tensors loaded; raises RuntimeError naming the tensors that are missing on either side.

    transformers' resume loads `model.safetensors` alone with `strict=False`: the LoRA-wrapped base weights
    (`….base_layer.weight`) and the whole vision LoRA would silently keep their SFT values.
    """
    folder = Path(checkpoint_dir)
    base = _checkpoint_tensors(folder, "model.safetensors", "model.safetensors.index.json")
    adapter = _checkpoint_tensors(folder / VISION_LORA_DIR, "adapter_model.safetensors", "adapter_model.index.json")
    tied = {"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", False) else set()
    target, missing, used_base, used_adapter = {}, [], set(), set()
    for key in model.state_dict():
        if ".lora_" in key:
            source, saved, used = adapter, "base_model.model." + key.replace(f".{VISION_ADAPTER}.", "."), used_adapter
        else:
            source, saved, used = base, key.replace(".base_layer.", "."), used_base
        if saved in source:
            target[key] = source[saved]
            used.add(saved)
        elif key not in tied:
            missing.append(key)
    unused = sorted(set(base) - used_base) + sorted(f"{VISION_LORA_DIR}/{k}" for k in set(adapter) - used_adapter)
    if missing or unused:
        raise RuntimeError(
            f"{folder}: checkpoint does not match the model: {len(missing)} model tensors not in it "
            f"({', '.join(missing[:5])}), {len(unused)} of its tensors unused ({', '.join(unused[:5])})"
        )
    model.load_state_dict(target, strict=False)
    return len(target)


def inactive_vision_lora(model) -> bool:
    """True when the model carries our `vision` LoRA but it is not active, which happens when a PEFT tuner
    (`--tuner_type lora`) wraps the model and activates only its own adapter."""
    from peft.tuners.lora import LoraLayer

    layers = [m for m in model.modules() if isinstance(m, LoraLayer) and VISION_ADAPTER in m.lora_A]
    return bool(layers) and any(VISION_ADAPTER not in m.active_adapters for m in layers)


def suppress_placeholder_tokens(model) -> None:
    """Never sample the image / audio placeholders (ids from the config): the native model runs its image embedding
    whenever an image token is in `input_ids`, so a sampled one crashes generation at the next decoding step (no
    image sizes are passed there). The tiny random model hits this within a few GRPO steps; a real one can during
    high-temperature exploration. Suppression acts on sampling only; training log-probs are the model's own."""
    placeholders = {model.config.vision_config.image_token_id, model.config.audio_config.audio_token_id}
    existing = set(model.generation_config.suppress_tokens or [])
    model.generation_config.suppress_tokens = sorted(existing | placeholders)


@contextlib.contextmanager
def lora_only_load_report():
    """Named patch: while our adapter loads, transformers' load report lists only missing LoRA tensors.

    transformers 5.19's `load_adapter` takes every parameter whose name contains the adapter's name for an adapter
    key (`is_adapter_key`: "lora" or the name itself in the key). Our adapter is `vision`, and the base model has
    `audio_embed.up_proj_for_vision_speech` / `down_proj_for_vision_speech`, so every load printed a "LOAD REPORT
    ... MISSING ... newly initialized" for those four base tensors, which the adapter never held and which load
    from `model.safetensors` as usual. A LoRA tensor missing from `vision-lora/` is still reported.
    """
    from transformers.integrations import peft as peft_integration

    original = getattr(peft_integration, "log_state_dict_report", None)
    if original is None:
        raise RuntimeError(
            "transformers.integrations.peft.log_state_dict_report is gone: re-check swift_patches/phi4mm.py's "
            "lora_only_load_report against transformers' load_adapter"
        )

    def report(*args, loading_info, **kwargs):
        loading_info.missing_keys = {key for key in loading_info.missing_keys if ".lora_" in key}
        return original(*args, loading_info=loading_info, **kwargs)

    peft_integration.log_state_dict_report = report
    try:
        yield
    finally:
        peft_integration.log_state_dict_report = original


class Phi4MMNativeLoader(ModelLoader):
    """Loads processor and model of a native Phi-4-MM checkpoint folder."""

    def get_processor(self, model_dir: str, config: PretrainedConfig):
        from transformers import Phi4MultimodalFeatureExtractor, Phi4MultimodalProcessor

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        feature_extractor = Phi4MultimodalFeatureExtractor.from_pretrained(model_dir)
        image_processor = load_image_processor(model_dir)
        dynamic_hd = dynamic_hd_override()
        if dynamic_hd is not None:
            image_processor.dynamic_hd = dynamic_hd
        logger.info("image crops: dynamic_hd=%d", image_processor.dynamic_hd)
        return Phi4MultimodalProcessor(image_processor, feature_extractor, tokenizer)

    def get_model(self, model_dir: str, *args, **kwargs):
        from transformers import Phi4MultimodalForCausalLM

        self.auto_model_cls = self.auto_model_cls or Phi4MultimodalForCausalLM
        vision_attention.install()  # before the model is built: every instance must attend bidirectionally
        model = super().get_model(model_dir, *args, **kwargs)
        vision_attention.assert_bidirectional(model)
        suppress_placeholder_tokens(model)
        adapter_dir = Path(model_dir) / VISION_LORA_DIR
        if vision_lora_enabled() and adapter_dir.is_dir():
            with lora_only_load_report():
                model.load_adapter(str(adapter_dir), adapter_name=VISION_ADAPTER)
            model.set_adapter(VISION_ADAPTER)
            # Instance-level override: checkpoints keep base weights + vision-lora/ (see save_native_layout).
            model.save_pretrained = types.MethodType(save_native_layout, model)
            logger.info("attached vision LoRA from %s as adapter %r", adapter_dir, VISION_ADAPTER)
        return model


# Entries of the per-template image-feature memo: enough for a batch of 16 two-image prompts.
IMAGE_FEATURE_CACHE_SIZE = 32


def _images_key(images: list, settings: tuple) -> bytes | None:
    """A digest of the images' pixels, mode and size plus the processing settings; None for non-PIL inputs."""
    from PIL import Image

    if not all(isinstance(image, Image.Image) for image in images):
        return None
    digest = hashlib.blake2b(repr(settings).encode(), digest_size=16)
    for image in images:
        digest.update(f"{image.mode}{image.size}".encode())
        digest.update(image.tobytes())
    return digest.digest()


class ImageReadError(ValueError):
    """An image of a row could not be read while encoding it (the message names the file and the row)."""


class Phi4MMNativeTemplate(Template):
    """Image-only template: one `<image>` tag becomes that image's run of image placeholder tokens."""

    def _init_placeholder_tokens(self):
        # The ids from the model config; ms-swift's default looks strings up on a list shared by the class.
        self.placeholder_tokens = [self.image_token_id, self.config.audio_config.audio_token_id]

    @property
    def image_token_id(self) -> int:
        """`vision_config.image_token_id`: the id the model's image embedding replaces."""
        return self.config.vision_config.image_token_id

    def replace_tag(self, media_type: Literal["image", "video", "audio"], index: int, inputs) -> list:
        if media_type != "image":
            raise ValueError(
                f"phi4_mm_native supports images only; got a {media_type} input (index {index}). "
                "Remove audio/video from the dataset row or use a model type that supports it."
            )
        # vLLM expands one placeholder token per image itself (swift_patches.vllm_phi4mm); here it is -100, expanded
        # in `_encode` once the image's token count is known.
        return [[self.image_token_id]] if self.mode == "vllm" else [[-100]]

    def prepare_engine_kwargs(self) -> dict[str, Any]:
        """vLLM engine arguments: our model class and processor (swift_patches/vllm_phi4mm.py)."""
        from swift_patches.vllm_phi4mm import engine_overrides

        return engine_overrides()

    @staticmethod
    def _load_image(image, load_images: bool):
        try:
            return Template._load_image(image, load_images)
        except Exception as error:  # PIL raises many types for a corrupt file
            path = image.get("path") if isinstance(image, dict) else image
            shown = path if isinstance(path, str) else type(image).__name__
            raise ImageReadError(f"image {shown}: {type(error).__name__}: {error}") from error

    def _preprocess_inputs(self, inputs) -> None:
        # vLLM mode encodes with ms-swift's base `_encode` (vLLM expands the images): the text-only check is here.
        if self.mode == "vllm" and not inputs.images:
            raise ValueError(VLLM_TEXT_ONLY)
        # The pre-flight check decodes every image; one that fails now changed since. Name the row, not just PIL.
        try:
            super()._preprocess_inputs(inputs)
        except ImageReadError as error:
            row = {k: inputs.extra_kwargs.get(k) for k in ("idx", "subject_id", "study_id")}
            raise ImageReadError(
                f"training row {row} (the GRPO set's idx, subject_id, study_id): {error}. The file changed after "
                "train.sh's pre-flight check; check the set again with tools/validate_data.py"
            ) from error.__cause__

    def _encode(self, inputs) -> dict[str, Any]:
        if getattr(inputs, "audios", None):
            raise ValueError("phi4_mm_native supports images only; this row has audio inputs")
        encoded = super()._encode(inputs)
        if not inputs.images:
            return encoded
        features, counts = self._image_features(inputs.images)
        image_token_id = self.image_token_id
        positions = findall(encoded["input_ids"], -100)
        if len(positions) != len(counts):
            raise ValueError(f"{len(positions)} <image> tags but {len(counts)} images in one sample")
        encoded["input_ids"], encoded["labels"], encoded["loss_scale"] = self._extend_tokens(
            encoded["input_ids"],
            encoded["labels"],
            encoded.get("loss_scale"),
            positions,
            lambda i: [image_token_id] * counts[i],
        )
        encoded.update({key: features[key] for key in IMAGE_KEYS})
        return encoded

    def _image_features(self, images: list) -> tuple[dict[str, torch.Tensor], list[int]]:
        """Processed features and token counts of one sample's images, memoised by pixel content.

        GRPO encodes a prompt's images once for the rollout and again for every one of its completions, and the
        token-probability export encodes a batch again to score it: the same pixels, processed once. The cache is
        small (a few batches) and hands out copies, so nothing downstream can alter a cached tensor.
        """
        image_processor = self.processor.image_processor
        crop_size = getattr(image_processor, "crop_size", None) or image_processor.size["height"]
        key = _images_key(images, (crop_size, getattr(image_processor, "dynamic_hd", None)))
        cache = self.__dict__.setdefault("_image_feature_cache", OrderedDict())
        if key is not None and key in cache:
            cache.move_to_end(key)
            features, counts = cache[key]
        else:
            processed = image_processor(images, return_tensors="pt")
            features = {k: processed[k] for k in IMAGE_KEYS}
            counts = image_token_counts(features, crop_size)
            if key is not None:
                cache[key] = (features, counts)
                while len(cache) > IMAGE_FEATURE_CACHE_SIZE:
                    cache.popitem(last=False)
        return {k: v.clone() for k, v in features.items()}, list(counts)

    def _data_collator(self, batch: list[dict[str, Any]], *, padding_to: int | None = None) -> dict[str, Any]:
        result = super()._data_collator(batch, padding_to=padding_to)
        with_images = [row for row in batch if row.get("image_pixel_values") is not None]
        if with_images:
            max_crops = max(row["image_pixel_values"].shape[1] for row in with_images)
            result["image_pixel_values"] = torch.cat(
                [
                    F.pad(
                        row["image_pixel_values"],
                        (0, 0, 0, 0, 0, 0, 0, max_crops - row["image_pixel_values"].shape[1]),
                    )
                    for row in with_images
                ]
            )
            result["image_attention_mask"] = torch.cat(
                [
                    F.pad(
                        row["image_attention_mask"],
                        (0, 0, 0, 0, 0, max_crops - row["image_attention_mask"].shape[1]),
                        value=1,
                    )
                    for row in with_images
                ]
            )
            result["image_sizes"] = torch.cat([row["image_sizes"] for row in with_images])
        return result


def register() -> None:
    """Register model type and template `phi4_mm_native` (idempotent), and make the vision tower bidirectional."""
    from swift.model.model_meta import MODEL_MAPPING
    from swift.template.register import TEMPLATE_MAPPING

    vision_attention.install()
    if TEMPLATE_TYPE not in TEMPLATE_MAPPING:
        # ms-swift's own meta of `phi4_multimodal`, the template the SFT checkpoint was trained with.
        register_template(Phi3TemplateMeta(TEMPLATE_TYPE, template_cls=Phi4MMNativeTemplate))
    if PROMPT_FORMATS["original"] not in TEMPLATE_MAPPING:
        # The original evaluate.py's f-string: f"<|user|>{image refs}{question}<|end|><|assistant|>".
        register_template(
            TemplateMeta(
                PROMPT_FORMATS["original"],
                prefix=[],
                prompt=["<|user|>{{QUERY}}<|end|><|assistant|>"],
                chat_sep=["<|end|>"],
                suffix=["<|end|>"],
                system_prefix=["<|system|>{{SYSTEM}}<|end|>"],
                auto_add_bos=True,
                template_cls=Phi4MMNativeTemplate,
            )
        )
    if MODEL_TYPE not in MODEL_MAPPING:
        register_model(
            ModelMeta(
                MODEL_TYPE,
                [ModelGroup([Model(hf_model_id="microsoft/Phi-4-multimodal-instruct")])],
                Phi4MMNativeLoader,
                template=TEMPLATE_TYPE,
                architectures=["Phi4MultimodalForCausalLM"],
                model_arch="phi4_multimodal",  # same module paths (model.layers, model.embed_tokens_extend.*)
                is_multimodal=True,
                tags=["vision"],
            )
        )
