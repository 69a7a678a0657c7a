"""Remote-code Phi-4-MM checkpoints (microsoft's original format, or one fine-tuned in it such as CheX-Phi4MM-SFT)
to transformers' native layout: the key and config mapping, as pure functions.

Key mapping (the rules of transformers' official `convert_phi4_multimodal_weights_to_hf.py`, newest version, plus
keeping the LoRAs):
- `….base_layer.weight|bias` (a linear wrapped by the built-in LoRAs) -> the plain native name;
- `….lora_A.vision.weight` / `….lora_B.vision.weight` -> the `vision` PEFT adapter (`vision-lora/`), and the same
  for `speech` (`speech-lora/`): a fine-tuned checkpoint's *trained* vision LoRA lives there, so it is kept, not
  dropped as transformers' script does;
- audio encoder: `feed_forward_(in|out).net.0.linear` -> `gate_up_proj`, `net.2` -> `down_proj`,
  `self_attn.linear_(q|k|v)` -> `(q|k|v)_proj`, `self_attn.linear_out` -> `o_proj`;
- image embedding: `img_projection.0` / `.2` -> `img_projection_up` / `_down`, `glb_GN` / `sub_GN` ->
  `global_img_feature_extensor` / `sub_img_feature_extensor`;
- audio projections: `audio_projection.speech.0` / `.2` -> `up_proj_for_speech` / `down_proj_for_speech`,
  `audio_projection.vision.0` / `.2` -> `up_proj_for_vision_speech` / `down_proj_for_vision_speech`;
- anything else keeps its name. Whether every resulting name exists in the native model is checked by the tool.

>>> classify_key("model.layers.0.self_attn.qkv_proj.base_layer.weight")
('base', 'model.layers.0.self_attn.qkv_proj.weight')
>>> classify_key("model.layers.0.mlp.down_proj.lora_B.vision.weight")
('vision', 'base_model.model.model.layers.0.mlp.down_proj.lora_B.weight')
"""

from __future__ import annotations

import re

ADAPTERS = ("vision", "speech")
# Our ms-swift model/template type for the native class (registered by swift_patches.phi4mm).
NATIVE_MODEL_TYPE = "phi4_mm_native"
# Evaluation prompt formats -> template types. `sft`: the prompt the CheX-Phi4MM SFT checkpoint was trained with
# (ms-swift's `phi4_multimodal`: `<|user|>\n{query}<|end|>\n<|assistant|>\n`). `original`: the original
# CheX-Phi4MM `evaluate.py`, whose prompt gave the paper's figures: f"{USER}{refs}{q}{END}{ASSISTANT}", no newlines,
# one image placeholder run per image before the question.
PROMPT_FORMATS = {"sft": NATIVE_MODEL_TYPE, "original": f"{NATIVE_MODEL_TYPE}_original"}
# vLLM holds the weights with the vision LoRA merged (swift_patches/vllm_phi4mm.py). microsoft's model turns the vision
# LoRA off for a prompt without an image, so on vLLM such a prompt would be answered by other weights than it is.
VLLM_TEXT_ONLY = (
    "phi4_mm_native on vLLM: a prompt without an image. vLLM holds the weights with the vision LoRA merged in, "
    "which microsoft's model applies only to prompts with an image; a text-only prompt would be answered by "
    "different weights. Give every prompt an image, or use the transformers engine."
)


# The special tokens of microsoft/Phi-4-multimodal-instruct's tokenizer, by role. The image and audio placeholders are
# `<|endoftext10|>` / `<|endoftext11|>` (ids 200010 / 200011 there, `vision_config.image_token_id` /
# `audio_config.audio_token_id`); eos is the pair [`<|endoftext|>` 199999, `<|end|>` 200020]. transformers' official
# conversion script writes the first two as the tokenizer's `extra_special_tokens`.
IMAGE_TOKEN, AUDIO_TOKEN = "<|endoftext10|>", "<|endoftext11|>"
ENDOFTEXT_TOKEN, END_TOKEN = "<|endoftext|>", "<|end|>"
EXTRA_SPECIAL_TOKENS = {"image_token": IMAGE_TOKEN, "audio_token": AUDIO_TOKEN}
# microsoft's chat template (tokenizer_config.json of the release): no newlines, tools on the system turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message and message['tools'] "
    "is not none %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|tool|>' + message['tools'] + "
    "'<|/tool|>' + '<|end|>' }}{% else %}{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}"
)
_ENCODER = r"^model\.embed_tokens_extend\.audio_embed\.encoder\.encoders\.(\d+)\."
_NATIVE_ENCODER = "model.embed_tokens_extend.audio_embed.encoder.encoders.\\1."
_IMAGE = "model.embed_tokens_extend.image_embed."
_AUDIO = "model.embed_tokens_extend.audio_embed."
# (remote-code pattern, native replacement); the first that matches wins.
_RENAMES = [
    (
        re.compile(_ENCODER + r"feed_forward_(in|out)\.net\.0\.linear\."),
        _NATIVE_ENCODER + r"feed_forward_\2.gate_up_proj.",
    ),
    (re.compile(_ENCODER + r"feed_forward_(in|out)\.net\.2\."), _NATIVE_ENCODER + r"feed_forward_\2.down_proj."),
    (re.compile(_ENCODER + r"self_attn\.linear_(q|k|v)\."), _NATIVE_ENCODER + r"self_attn.\2_proj."),
    (re.compile(_ENCODER + r"self_attn\.linear_out\."), _NATIVE_ENCODER + "self_attn.o_proj."),
    (re.compile("^" + re.escape(_IMAGE + "img_projection.0.")), _IMAGE + "img_projection_up."),
    (re.compile("^" + re.escape(_IMAGE + "img_projection.2.")), _IMAGE + "img_projection_down."),
    (re.compile("^" + re.escape(_IMAGE + "glb_GN") + "$"), _IMAGE + "global_img_feature_extensor"),
    (re.compile("^" + re.escape(_IMAGE + "sub_GN") + "$"), _IMAGE + "sub_img_feature_extensor"),
    (re.compile("^" + re.escape(_AUDIO + "audio_projection.speech.0.")), _AUDIO + "up_proj_for_speech."),
    (re.compile("^" + re.escape(_AUDIO + "audio_projection.speech.2.")), _AUDIO + "down_proj_for_speech."),
    (re.compile("^" + re.escape(_AUDIO + "audio_projection.vision.0.")), _AUDIO + "up_proj_for_vision_speech."),
    (re.compile("^" + re.escape(_AUDIO + "audio_projection.vision.2.")), _AUDIO + "down_proj_for_vision_speech."),
]
_LORA = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>A|B)\.(?P<adapter>\w+)\.weight$")
# The LoRA'd projections of the language model, as PEFT target modules (microsoft's `layer` pattern).
DEFAULT_TARGETS = r"model.layers.\d+.((self_attn.(qkv|o)_proj)|(mlp.(gate_up|down)_proj))"


def classify_key(key: str) -> tuple[str, str]:
    """(`base` | `vision` | `speech` | `unknown`, new key) for one remote-code state-dict key."""
    lora = _LORA.match(key)
    if lora:
        if lora["adapter"] not in ADAPTERS:
            return "unknown", key
        return lora["adapter"], f"base_model.model.{lora['module']}.lora_{lora['ab']}.weight"
    if ".lora_" in key:
        return "unknown", key
    key = key.replace(".base_layer.", ".")
    for pattern, replacement in _RENAMES:
        key, count = pattern.subn(replacement, key)
        if count:
            break
    return "base", key


def _init_keys(config_cls) -> set[str]:
    import inspect

    return {name for name in inspect.signature(config_cls.__init__).parameters if name not in ("self", "kwargs")}


def convert_config(remote: dict) -> tuple[dict, dict, dict, dict[str, dict]]:
    """(text kwargs, vision config kwargs, audio config kwargs, {adapter: its LoRA settings}) of a remote config.

    Vision: the keys of `embd_layer.image_embd_layer` that the native vision config knows (crop size, HD settings,
    and sizes when present; otherwise the native defaults, SigLIP-400M, which the remote code hard-codes). Audio:
    `audio_processor.config` renamed to the native names, keeping the keys the native audio config knows.
    """
    from transformers import Phi4MultimodalAudioConfig, Phi4MultimodalVisionConfig

    remote = dict(remote)
    for key in (
        "_name_or_path",
        "architectures",
        "auto_map",
        "transformers_version",
        "_attn_implementation",
        "model_type",
        "torch_dtype",
    ):
        remote.pop(key, None)
    adapters = {name: remote.pop(f"{name}_lora") for name in ADAPTERS if isinstance(remote.get(f"{name}_lora"), dict)}
    embd = remote.pop("embd_layer", None) or {}
    vision_keys = _init_keys(Phi4MultimodalVisionConfig)
    vision = {k: v for k, v in (embd.get("image_embd_layer") or {}).items() if k in vision_keys}
    audio = dict((remote.pop("audio_processor", None) or {}).get("config") or {})
    renames = {
        "attention_dim": "hidden_size",
        "attention_heads": "num_attention_heads",
        "linear_units": "intermediate_size",
        # microsoft's config.json spells it so; transformers' script drops it, which silently resets a non-default
        # width to the native default.
        "depthwise_seperable_out_channel": "depthwise_separable_out_channel",
    }
    for old, new in renames.items():
        if old in audio:
            audio[new] = audio.pop(old)
    if isinstance(audio.get("nemo_conv_settings"), dict):
        audio["nemo_conv_channels"] = audio.pop("nemo_conv_settings")["conv_channels"]
    if isinstance(audio.get("relative_attention_bias_args"), dict):
        audio["bias_max_distance"] = audio.pop("relative_attention_bias_args")["t5_bias_max_distance"]
    if "downsample_rate" in (embd.get("audio_embd_layer") or {}):
        audio["downsample_rate"] = embd["audio_embd_layer"]["downsample_rate"]
    audio_keys = _init_keys(Phi4MultimodalAudioConfig)
    audio = {k: v for k, v in audio.items() if k in audio_keys}
    return remote, vision, audio, adapters


def native_processor_files(crop_size: int, patch_size: int = 14, dynamic_hd: int = 36, **audio) -> dict[str, dict]:
    """`preprocessor_config.json` and `processor_config.json` as microsoft's native checkpoint ships them; `audio`
    overrides the audio feature settings (`audio_compression_rate`, `audio_downsample_rate`, `audio_feat_stride`)."""
    preprocessor = {
        "image_processor_type": "Phi4MultimodalImageProcessor",
        "processor_class": "Phi4MultimodalProcessor",
        "size": {"height": crop_size, "width": crop_size},
        "patch_size": patch_size,
        "dynamic_hd": dynamic_hd,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "feature_extractor_type": "Phi4MultimodalFeatureExtractor",
        "audio_compression_rate": 8,
        "audio_downsample_rate": 1,
        "audio_feat_stride": 1,
        "feature_size": 80,
        "sampling_rate": 16000,
        "padding_value": 0.0,
    }
    preprocessor.update({k: v for k, v in audio.items() if k in preprocessor})
    processor = {"processor_class": "Phi4MultimodalProcessor", "image_token": IMAGE_TOKEN, "audio_token": AUDIO_TOKEN}
    return {"preprocessor_config.json": preprocessor, "processor_config.json": processor}
