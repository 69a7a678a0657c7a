"""tools/convert_phi4mm_checkpoint.py against microsoft's remote-code layout.

The remote-code checkpoints here are written from the official mapping rules (transformers'
`convert_phi4_multimodal_weights_to_hf.py`, newest version: its `STATE_DICT_MAPPING`, and "`base_layer.` is dropped,
`lora` keys are adapters"), restated below native -> remote, independently of the converter's own table. Spot names
of the release's index (as listed by public tools that read microsoft's `model.safetensors.index.json`) check that
restatement.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from utils.checkpoints.phi4mm import classify_key

_ENC = "model.embed_tokens_extend.audio_embed.encoder.encoders."
_IMG = "model.embed_tokens_extend.image_embed."
_AUD = "model.embed_tokens_extend.audio_embed."
# The official STATE_DICT_MAPPING, inverted: native name pattern -> remote-code name.
OFFICIAL_INVERSE = [
    (re.escape(_ENC) + r"(\d+)\.feed_forward_(in|out)\.gate_up_proj\.", _ENC + r"\1.feed_forward_\2.net.0.linear."),
    (re.escape(_ENC) + r"(\d+)\.feed_forward_(in|out)\.down_proj\.", _ENC + r"\1.feed_forward_\2.net.2."),
    (re.escape(_ENC) + r"(\d+)\.self_attn\.(q|k|v)_proj\.", _ENC + r"\1.self_attn.linear_\2."),
    (re.escape(_ENC) + r"(\d+)\.self_attn\.o_proj\.", _ENC + r"\1.self_attn.linear_out."),
    (re.escape(_IMG + "img_projection_up."), _IMG + "img_projection.0."),
    (re.escape(_IMG + "img_projection_down."), _IMG + "img_projection.2."),
    (re.escape(_IMG + "global_img_feature_extensor") + "$", _IMG + "glb_GN"),
    (re.escape(_IMG + "sub_img_feature_extensor") + "$", _IMG + "sub_GN"),
    (re.escape(_AUD + "up_proj_for_speech."), _AUD + "audio_projection.speech.0."),
    (re.escape(_AUD + "down_proj_for_speech."), _AUD + "audio_projection.speech.2."),
    (re.escape(_AUD + "up_proj_for_vision_speech."), _AUD + "audio_projection.vision.0."),
    (re.escape(_AUD + "down_proj_for_vision_speech."), _AUD + "audio_projection.vision.2."),
]
# microsoft's LoRA targets (config.json `vision_lora.layer` / `speech_lora.layer`): the language model's projections.
LORA_MODULE = re.compile(r"^model\.layers\.\d+\.(self_attn\.(qkv|o)_proj|mlp\.(gate_up|down)_proj)$")
# Names in the release's index (microsoft/Phi-4-multimodal-instruct), layer 0 of each stack.
RELEASE_NAMES = {
    "model.layers.0.self_attn.qkv_proj.base_layer.weight",
    "model.layers.0.self_attn.qkv_proj.lora_A.vision.weight",
    "model.layers.0.mlp.down_proj.lora_B.speech.weight",
    "model.embed_tokens_extend.image_embed.img_processor.encoder.layers.0.self_attn.q_proj.weight",
    "model.embed_tokens_extend.image_embed.img_processor.embeddings.patch_embedding.weight",
    "model.embed_tokens_extend.image_embed.img_projection.0.weight",
    "model.embed_tokens_extend.image_embed.img_projection.2.bias",
    "model.embed_tokens_extend.image_embed.glb_GN",
    "model.embed_tokens_extend.image_embed.sub_GN",
    "model.embed_tokens_extend.audio_embed.audio_projection.speech.0.weight",
    "model.embed_tokens_extend.audio_embed.audio_projection.vision.2.weight",
    "model.embed_tokens_extend.audio_embed.encoder.encoders.0.feed_forward_in.net.0.linear.weight",
    "model.embed_tokens_extend.audio_embed.encoder.encoders.0.feed_forward_out.net.2.bias",
    "model.embed_tokens_extend.audio_embed.encoder.encoders.0.self_attn.linear_q.weight",
    "model.embed_tokens_extend.audio_embed.encoder.encoders.0.self_attn.linear_out.weight",
    "model.embed_tokens_extend.audio_embed.encoder.encoders.0.conv.glu.b1",
    "model.embed_tokens_extend.audio_embed.encoder.encoder_embedding.global_mean",
    "model.embed_tokens_extend.audio_embed.encoder.relative_attention_bias_layer.bias_values.weight",
}


def remote_name(native: str) -> str:
    """The remote-code name of a native base weight (official rules, inverted)."""
    for pattern, replacement in OFFICIAL_INVERSE:
        renamed, count = re.subn("^" + pattern, replacement, native)
        if count:
            return renamed
    module, leaf = native.rsplit(".", 1)
    return f"{module}.base_layer.{leaf}" if LORA_MODULE.match(module) else native


def remote_inventory(native_keys) -> dict[str, str]:
    """remote-code name -> what it holds (`native:<key>` or `<adapter>:<module>:<A|B>`), LoRAs on every target."""
    inventory = {}
    for key in native_keys:
        if key == "lm_head.weight":
            continue  # tied to the embeddings in the release, so not stored
        inventory[remote_name(key)] = f"native:{key}"
        module = key.rsplit(".", 1)[0]
        if key.endswith(".weight") and LORA_MODULE.match(module):
            for adapter in ("vision", "speech"):
                for ab in "AB":
                    inventory[f"{module}.lora_{ab}.{adapter}.weight"] = f"{adapter}:{module}:{ab}"
    return inventory


def test_key_mapping_covers_the_full_size_release_inventory():
    from transformers import Phi4MultimodalConfig, Phi4MultimodalForCausalLM

    with torch.device("meta"):
        model = Phi4MultimodalForCausalLM(Phi4MultimodalConfig())
    native_keys = set(model.state_dict())
    inventory = remote_inventory(native_keys)
    assert RELEASE_NAMES <= set(inventory)  # the restated rules produce the release's names
    mapped_base = set()
    for remote, holds in inventory.items():
        kind, new_key = classify_key(remote)
        if holds.startswith("native:"):
            assert (kind, new_key) == ("base", holds.removeprefix("native:")), remote
            mapped_base.add(new_key)
        else:
            adapter, module, ab = holds.split(":")
            assert (kind, new_key) == (adapter, f"base_model.model.{module}.lora_{ab}.weight"), remote
    assert native_keys - mapped_base == {"lm_head.weight"}  # only the tied head is missing, as the official script


def write_remote_checkpoint(native: Path, out: Path, speech_rank: int = 2) -> dict:
    """The tiny native model + its vision LoRA written as a remote-code checkpoint: names from the official rules,
    LoRAs inside the weights, and a config.json in microsoft's structure. Returns the speech LoRA tensors written."""
    out.mkdir(parents=True)
    base = load_file(native / "model.safetensors")
    vision = load_file(native / "vision-lora" / "adapter_model.safetensors")
    generator = torch.Generator().manual_seed(1)
    remote, speech = {}, {}
    for name, holds in remote_inventory(base).items():
        if holds.startswith("native:"):
            remote[name] = base[holds.removeprefix("native:")]
        elif holds.startswith("vision:"):
            _, module, ab = holds.split(":")
            remote[name] = vision[f"base_model.model.{module}.lora_{ab}.weight"]
        else:
            _, module, ab = holds.split(":")
            shape_of = vision[f"base_model.model.{module}.lora_{ab}.weight"].shape
            shape = (speech_rank, shape_of[1]) if ab == "A" else (shape_of[0], speech_rank)
            remote[name] = speech[name] = torch.randn(*shape, generator=generator)
    save_file(remote, str(out / "model-00001-of-00001.safetensors"))
    config = json.loads((native / "config.json").read_text())
    vision_config, audio_config = config.pop("vision_config"), config.pop("audio_config")
    for key in ("image_token_id", "audio_token_id", "model_type"):  # the remote config has none of these
        vision_config.pop(key, None)
        audio_config.pop(key, None)
    # microsoft's audio_processor.config names (and its spelling of depthwise_seperable_out_channel).
    audio = {
        "attention_dim": audio_config.pop("hidden_size"),
        "attention_heads": audio_config.pop("num_attention_heads"),
        "linear_units": audio_config.pop("intermediate_size"),
        "num_blocks": audio_config.pop("num_blocks"),
        "ext_pw_out_channel": audio_config.pop("ext_pw_out_channel"),
        "depthwise_seperable_out_channel": audio_config.pop("depthwise_separable_out_channel"),
        "nemo_conv_settings": {"conv_channels": audio_config.pop("nemo_conv_channels")},
        "relative_attention_bias_args": {"t5_bias_max_distance": audio_config.pop("bias_max_distance"), "type": "t5"},
        "activation_checkpointing": {"interval": 1, "module": "transformer", "offload": False},
        "encoder_embedding_config": {"input_size": 80},
        "input_layer": "nemo_conv",
        "cnn_layer_norm": True,
        "batch_norm": False,
        "causal": True,
        "ext_pw_kernel_size": 1,
        "bias_in_glu": True,
        "input_size": 80,
        "time_reduction": 8,
    }
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        config.pop(key, None)
    config.update(
        architectures=["Phi4MMForCausalLM"],
        model_type="phi4mm",
        auto_map={"AutoConfig": "configuration_phi4mm.Phi4MMConfig"},
        bos_token_id=0,  # the tiny vocabulary's <|endoftext|>; the release's config has 199999 for all three
        eos_token_id=0,
        pad_token_id=0,
        embd_layer={
            "embedding_cls": "image_audio",
            "image_embd_layer": {
                "crop_size": vision_config["crop_size"],
                "embedding_cls": "tune_image",
                "enable_gradient_checkpointing": True,
                "hd_transform_order": "sub_glb",
                "image_token_compression_cls": "avg_pool_2d",
                "projection_cls": "mlp",
                "use_hd_transform": True,
                "with_learnable_separator": True,
                # the release's image layer is SigLIP-400M at full size; the tiny one states its sizes
                **{k: vision_config[k] for k in vision_config if k in ("hidden_size", "intermediate_size")},
                **{k: vision_config[k] for k in ("num_hidden_layers", "num_attention_heads", "image_size")},
                "patch_size": vision_config["patch_size"],
            },
            "audio_embd_layer": {
                "downsample_rate": 1,
                "embedding_cls": "audio",
                "enable_gradient_checkpointing": True,
            },
        },
        audio_processor={"config": audio, "name": "cascades"},
        img_processor=None,
        vision_lora={
            "dp": 0.0,
            "layer": "layers.*((self_attn\\.(qkv|o)_proj)|(mlp\\.(gate_up|down)_proj))",
            "lora_alpha": 8,
            "r": 4,
        },
        speech_lora={
            "dp": 0.01,
            "layer": "((layers.*self_attn\\.(qkv|o)_proj)|(layers.*mlp\\.(gate_up|down)_proj))",
            "lora_alpha": 2 * speech_rank,
            "r": speech_rank,
        },
        torch_dtype="bfloat16",
    )
    (out / "config.json").write_text(json.dumps(config, indent=2))
    tokenizer_config = json.loads((native / "tokenizer_config.json").read_text())
    tokenizer_config.pop("extra_special_tokens", None)  # the remote-code release has none: the converter adds them
    tokenizer_config["auto_map"] = {"AutoProcessor": "processing_phi4mm.Phi4MMProcessor"}
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    for name in ("tokenizer.json", "chat_template.jinja", "generation_config.json"):
        shutil.copy2(native / name, out / name)
    (out / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "auto_map": {"AutoProcessor": "processing_phi4mm.Phi4MMProcessor"},
                "processor_class": "Phi4MMProcessor",
                "image_processor_type": "Phi4MMImageProcessor",
                "dynamic_hd": 16,
                "audio_compression_rate": 8,
            }
        )
    )
    return speech


def _logits(model_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of a fixed text input with the vision LoRA active, and with it disabled."""
    from transformers import Phi4MultimodalForCausalLM

    model = Phi4MultimodalForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    model.load_adapter(str(model_dir / "vision-lora"), adapter_name="vision")
    model.set_adapter("vision")
    input_ids = torch.arange(7, 47).reshape(2, 20)
    with torch.no_grad():
        with_lora = model(input_ids=input_ids).logits
        model.disable_adapters()
        without = model(input_ids=input_ids).logits
    return with_lora, without


def test_converted_checkpoint_reproduces_the_reference_logits(tiny_model, tmp_path):
    from tools.convert_phi4mm_checkpoint import main as convert

    speech = write_remote_checkpoint(tiny_model, tmp_path / "remote")
    assert convert([str(tmp_path / "remote"), str(tmp_path / "native")]) == 0
    out = tmp_path / "native"
    reference, reference_without_lora = _logits(tiny_model)
    converted, converted_without_lora = _logits(out)
    assert not torch.allclose(reference, reference_without_lora)  # the trained vision LoRA matters
    assert torch.allclose(converted, reference, atol=1e-6)
    assert torch.allclose(converted_without_lora, reference_without_lora, atol=1e-6)
    adapter = json.loads((out / "vision-lora" / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and adapter["lora_alpha"] == 8
    converted_speech = load_file(out / "speech-lora" / "adapter_model.safetensors")
    assert {classify_key(k)[1] for k in speech} == set(converted_speech)
    assert json.loads((out / "speech-lora" / "adapter_config.json").read_text())["lora_dropout"] == 0.01
    preprocessor = json.loads((out / "preprocessor_config.json").read_text())
    assert preprocessor["size"] == {"height": 56, "width": 56} and preprocessor["dynamic_hd"] == 16
    tokenizer_config = json.loads((out / "tokenizer_config.json").read_text())
    assert "auto_map" not in tokenizer_config
    assert tokenizer_config["extra_special_tokens"] == {
        "image_token": "<|endoftext10|>",
        "audio_token": "<|endoftext11|>",
    }
    # The converted config names the release's tokens by role, and keeps every size of the source.
    reference_config, converted_config = (json.loads((d / "config.json").read_text()) for d in (tiny_model, out))
    for section, key in [("vision_config", "image_token_id"), ("audio_config", "audio_token_id")]:
        assert converted_config[section][key] == reference_config[section][key]
    assert converted_config["eos_token_id"] == reference_config["eos_token_id"]
    for key in ("depthwise_separable_out_channel", "nemo_conv_channels", "hidden_size"):
        assert converted_config["audio_config"][key] == reference_config["audio_config"][key]


def test_converted_checkpoint_runs_in_ms_swift(tiny_model, demo_data, swift_plugin, tmp_path):
    from swift.infer_engine import InferRequest, RequestConfig, TransformersEngine

    from tools.convert_phi4mm_checkpoint import main as convert

    write_remote_checkpoint(tiny_model, tmp_path / "remote")
    assert convert([str(tmp_path / "remote"), str(tmp_path / "native")]) == 0
    engine = TransformersEngine(str(tmp_path / "native"), model_type="phi4_mm_native", torch_dtype=torch.float32)
    image = next((demo_data / "images").glob("*.png"))
    request = InferRequest(messages=[{"role": "user", "content": "<image>Is there effusion?"}], images=[str(image)])
    response = engine.infer([request], RequestConfig(max_tokens=4, temperature=0), use_tqdm=False)[0]
    assert response.choices[0].message.content is not None


@pytest.mark.parametrize("defect", ["extra key", "missing key"])
def test_unaccounted_tensors_are_listed(defect, tiny_model, tmp_path, capsys):
    from tools.convert_phi4mm_checkpoint import main as convert

    write_remote_checkpoint(tiny_model, tmp_path / "remote")
    shard = tmp_path / "remote" / "model-00001-of-00001.safetensors"
    tensors = load_file(shard)
    if defect == "extra key":
        tensors["model.mystery_head.weight"] = torch.zeros(2)
        expected = "have no place in the native model: model.mystery_head.weight"
    else:
        del tensors["model.embed_tokens_extend.image_embed.glb_GN"]
        expected = "missing from the checkpoint: model.embed_tokens_extend.image_embed.global_img_feature_extensor"
    save_file(tensors, str(shard))
    assert convert([str(tmp_path / "remote"), str(tmp_path / "native")]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "native").exists()
