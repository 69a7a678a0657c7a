"""tools/convert_phi4mm_checkpoint.py on a tiny checkpoint written here in microsoft's remote-code layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from utils.phi4mm_conversion import classify_key

REMOTE_AUDIO = [  # native -> remote-code names of the audio encoder (the inverse of the converter's renames)
    (".feed_forward_in.gate_up_proj.", ".feed_forward_in.net.0.linear."),
    (".feed_forward_out.gate_up_proj.", ".feed_forward_out.net.0.linear."),
    (".feed_forward_in.down_proj.", ".feed_forward_in.net.2."),
    (".feed_forward_out.down_proj.", ".feed_forward_out.net.2."),
    (".self_attn.q_proj.", ".self_attn.linear_q."),
    (".self_attn.k_proj.", ".self_attn.linear_k."),
    (".self_attn.v_proj.", ".self_attn.linear_v."),
    (".self_attn.o_proj.", ".self_attn.linear_out."),
]


def write_remote_checkpoint(native: Path, out: Path, speech_rank: int = 2) -> dict:
    """The tiny native model + its vision LoRA, written as a remote-code checkpoint (LoRAs inside the weights,
    `base_layer` names, original audio names, original config). Returns the speech LoRA tensors written."""
    out.mkdir(parents=True)
    base = load_file(native / "model.safetensors")
    vision = load_file(native / "vision-lora" / "adapter_model.safetensors")
    lora_modules = {k.removeprefix("base_model.model.").rsplit(".lora_", 1)[0] for k in vision}
    generator = torch.Generator().manual_seed(1)
    remote, speech = {}, {}
    for key, tensor in base.items():
        module = key.rsplit(".", 1)[0]
        if module in lora_modules:
            remote[key.replace(f"{module}.", f"{module}.base_layer.")] = tensor
            a = vision[f"base_model.model.{module}.lora_A.weight"]
            b = vision[f"base_model.model.{module}.lora_B.weight"]
            remote[f"{module}.lora_A.vision.weight"], remote[f"{module}.lora_B.vision.weight"] = a, b
            speech[f"{module}.lora_A.speech.weight"] = torch.randn(speech_rank, a.shape[1], generator=generator)
            speech[f"{module}.lora_B.speech.weight"] = torch.randn(b.shape[0], speech_rank, generator=generator)
            continue
        if ".audio_embed.encoder.encoders." in key:
            for new, old in REMOTE_AUDIO:
                key = key.replace(new, old)
        remote[key] = tensor
    remote.update(speech)
    save_file(remote, str(out / "model-00001-of-00001.safetensors"))
    config = json.loads((native / "config.json").read_text())
    vision_config, audio_config = config.pop("vision_config"), config.pop("audio_config")
    audio_config["attention_dim"] = audio_config.pop("hidden_size")
    audio_config["attention_heads"] = audio_config.pop("num_attention_heads")
    audio_config["linear_units"] = audio_config.pop("intermediate_size")
    audio_config["nemo_conv_settings"] = {"conv_channels": audio_config.pop("nemo_conv_channels")}
    audio_config["relative_attention_bias_args"] = {"t5_bias_max_distance": audio_config.pop("bias_max_distance")}
    config.update(
        architectures=["Phi4MMForCausalLM"],
        model_type="phi4mm",
        auto_map={"AutoModelForCausalLM": "modeling_phi4mm.Phi4MMForCausalLM"},
        embd_layer={
            "image_embd_layer": {**vision_config, "embedding_cls": "tune_image"},
            "audio_embd_layer": {"downsample_rate": audio_config["downsample_rate"]},
        },
        audio_processor={"config": audio_config, "name": "cascades"},
        vision_lora={
            "r": 4,
            "lora_alpha": 8,
            "dp": 0.0,
            "layer": "layers.*((self_attn\\.(qkv|o)_proj)|(mlp\\.(gate_up|down)_proj))",
        },
        speech_lora={
            "r": speech_rank,
            "lora_alpha": 2 * speech_rank,
            "dp": 0.01,
            "layer": "((layers.*self_attn\\.(qkv|o)_proj)|(layers.*mlp\\.(gate_up|down)_proj))",
        },
    )
    (out / "config.json").write_text(json.dumps(config, indent=2))
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
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
    assert "auto_map" not in json.loads((out / "tokenizer_config.json").read_text())


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
        del tensors["model.norm.weight"]
        expected = "missing from the checkpoint: model.norm.weight"
    save_file(tensors, str(shard))
    assert convert([str(tmp_path / "remote"), str(tmp_path / "native")]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "native").exists()
