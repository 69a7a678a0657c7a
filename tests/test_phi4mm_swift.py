"""Native Phi-4-MM through real ms-swift 4.6: inference from images, a GRPO run, and its checkpoint."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tests.grpo_helpers import grpo_arguments, write_grpo_rows


def _requests(demo_data, split: str, limit: int):
    from swift.infer_engine import InferRequest

    rows = json.loads((demo_data / "annotations" / "eval" / f"{split}.json").read_text())[:limit]
    return [
        InferRequest(
            messages=[{"role": "user", "content": "<image>" * len(r["image_ids"]) + r["question"]}],
            images=[str(demo_data / "images" / f"{s}.png") for s in r["image_ids"]],
        )
        for r in rows
    ]


def test_generates_from_images_through_inference_engine(tiny_model, demo_data, swift_plugin):
    from swift.infer_engine import RequestConfig, TransformersEngine

    engine = TransformersEngine(
        str(tiny_model), model_type="phi4_mm_native", torch_dtype=torch.float32, max_batch_size=4
    )
    assert any(".lora_A.vision." in name for name, _ in engine.model.named_parameters())
    requests = _requests(demo_data, "test_basic_vqa", 2) + _requests(demo_data, "test_compare_vqa", 2)
    responses = engine.infer(requests, RequestConfig(max_tokens=8, temperature=0, logprobs=True), use_tqdm=False)
    assert len(responses) == 4
    for response in responses:
        content = response.choices[0].logprobs["content"]
        assert 1 <= len(content) <= 8
        assert all(entry["logprob"] <= 0 for entry in content)
    # Each image is expanded into exactly the tokens the vision embedding emits (27 for 112 px at 56 px crops).
    template = engine.template
    encoded = [template.encode(request) for request in _requests(demo_data, "test_basic_vqa", 2)]
    image_token = engine.model.config.vision_config.image_token_id
    assert all(e["input_ids"].count(image_token) == 27 for e in encoded)


def test_audio_input_is_rejected_with_a_clear_error(tiny_model, demo_data, swift_plugin):
    from swift.infer_engine import InferRequest, RequestConfig, TransformersEngine

    engine = TransformersEngine(str(tiny_model), model_type="phi4_mm_native", torch_dtype=torch.float32)
    request = InferRequest(messages=[{"role": "user", "content": "<audio>What is said?"}], audios=["x.wav"])
    with pytest.raises(ValueError, match="images only"):
        engine.infer([request], RequestConfig(max_tokens=2), use_tqdm=False)


def test_two_step_grpo_writes_loadable_checkpoint(tiny_model, demo_data, swift_plugin, tmp_path):
    from swift import rlhf_main
    from swift.rewards import ORM, orms

    class CompletionLength(ORM):
        def __call__(self, completions, **kwargs):
            return [min(len(c), 50) / 50 for c in completions]

    orms["test_completion_length"] = CompletionLength
    dataset = write_grpo_rows(
        demo_data / "annotations" / "eval" / "test_basic_vqa.json",
        demo_data / "images",
        tmp_path / "train.jsonl",
        limit=8,
    )
    result = rlhf_main(
        grpo_arguments(tiny_model, dataset, tmp_path / "run", [str(swift_plugin)], ["test_completion_length"])
    )
    assert result["global_step"] == 2
    checkpoint = tmp_path / "run" / "checkpoint-2"
    base_before, base_after = load_file(tiny_model / "model.safetensors"), load_file(checkpoint / "model.safetensors")
    assert sorted(base_before) == sorted(base_after)  # native layout, no PEFT prefixes
    assert any(not torch.equal(base_before[k], base_after[k]) for k in base_before)
    lora_before = load_file(tiny_model / "vision-lora" / "adapter_model.safetensors")
    lora_after = load_file(checkpoint / "vision-lora" / "adapter_model.safetensors")
    assert sorted(lora_before) == sorted(lora_after)
    logged = [json.loads(line) for line in (tmp_path / "run" / "logging.jsonl").read_text().splitlines()]
    assert any("rewards/CompletionLength/mean" in row for row in logged)

    from swift.infer_engine import RequestConfig, TransformersEngine

    engine = TransformersEngine(str(checkpoint), model_type="phi4_mm_native", torch_dtype=torch.float32)
    trained = dict(engine.model.named_parameters())
    name = next(n for n in trained if ".lora_B.vision." in n)
    key = "base_model.model." + name.replace(".vision", "")
    assert torch.equal(trained[name].detach(), lora_after[key])
    assert engine.infer(_requests(demo_data, "test_basic_vqa", 1), RequestConfig(max_tokens=4), use_tqdm=False)


def test_image_features_are_processed_once_per_content_and_handed_out_as_copies(tiny_model, demo_data, swift_plugin):
    from swift.infer_engine import TransformersEngine

    engine = TransformersEngine(str(tiny_model), model_type="phi4_mm_native", torch_dtype=torch.float32)
    template = engine.template
    template.set_mode("transformers")
    request = _requests(demo_data, "test_compare_vqa", 1)[0]
    first = template.encode(request)
    cache = template._image_feature_cache
    assert len(cache) == 1
    with torch.inference_mode():  # ms-swift encodes under inference mode
        first["image_pixel_values"].add_(1.0)  # a consumer that writes into its inputs must not reach the cache
    second = template.encode(request)
    assert len(cache) == 1 and second["input_ids"] == first["input_ids"]
    assert torch.equal(second["image_pixel_values"] + 1.0, first["image_pixel_values"])
    template.processor.image_processor.dynamic_hd = 1  # different processing settings: a different entry
    third = template.encode(request)
    assert len(cache) == 2 and third["image_pixel_values"].shape[2] <= second["image_pixel_values"].shape[2]
