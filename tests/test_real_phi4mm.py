"""The tiny model and our template against the real Phi-4-multimodal, with expected values from independent sources:
transformers' `Phi4MultimodalConfig` defaults (microsoft's release) on the meta device, the release's token table
(transformers' official conversion script, microsoft's tokenizer_config.json), and ms-swift's installed
`phi4_multimodal` template, which the CheX-Phi4MM SFT checkpoint was trained with.
"""

from __future__ import annotations

import re

import pytest
import torch

# microsoft/Phi-4-multimodal-instruct: id -> token of the special tokens the model uses, and their roles.
RELEASE_TOKENS = {199999: "<|endoftext|>", 200010: "<|endoftext10|>", 200011: "<|endoftext11|>", 200020: "<|end|>"}
# Fields that are sizes (vocabulary and ids included): the only ones the tiny model may change.
SIZE_FIELDS = {
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "image_size",
    "crop_size",
    "patch_size",
    "num_blocks",
    "ext_pw_out_channel",
    "depthwise_separable_out_channel",
    "nemo_conv_channels",
}
TOKEN_ID_FIELDS = {"bos_token_id", "eos_token_id", "pad_token_id", "image_token_id", "audio_token_id"}
# microsoft's config.json departs from transformers' defaults here; the tiny model follows microsoft: tied embeddings
# (the official script expects lm_head.weight to be missing because it is tied) and rotary embeddings on 75 % of
# each head (`partial_rotary_factor` 0.75).
RELEASE_OVERRIDES = {"tie_word_embeddings": True, "rope_parameters": {"partial_rotary_factor": 0.75}}


def _layout(keys) -> set[str]:
    return {re.sub(r"\.\d+\.", ".N.", key) for key in keys}


def _compare(tiny: dict, full: dict, path: str, differences: list[str]) -> None:
    for key in sorted(set(tiny) | set(full)):
        where = f"{path}{key}"
        if key in ("transformers_version", "architectures", "dtype", "_name_or_path"):
            continue
        if isinstance(full.get(key), dict) and isinstance(tiny.get(key), dict) and key != "rope_parameters":
            _compare(tiny[key], full[key], f"{where}.", differences)
        elif key not in SIZE_FIELDS | TOKEN_ID_FIELDS and tiny.get(key) != full.get(key):
            differences.append(f"{where}: tiny {tiny.get(key)!r}, release {full.get(key)!r}")


def test_tiny_model_differs_from_the_release_only_in_sizes(tiny_model):
    from transformers import AutoTokenizer, Phi4MultimodalConfig, Phi4MultimodalForCausalLM

    release = Phi4MultimodalConfig()
    tiny = Phi4MultimodalConfig.from_pretrained(tiny_model).to_dict()  # what the model runs with
    full = release.to_dict()
    full["tie_word_embeddings"] = RELEASE_OVERRIDES["tie_word_embeddings"]
    full["rope_parameters"] = {**full["rope_parameters"], **RELEASE_OVERRIDES["rope_parameters"]}
    differences: list[str] = []
    _compare(tiny, full, "", differences)
    assert differences == []

    # Every id the model uses names the release's token of the same role.
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    for field_path, release_id in [
        (("bos_token_id",), release.bos_token_id),
        (("pad_token_id",), release.pad_token_id),
        (("vision_config", "image_token_id"), release.vision_config.image_token_id),
        (("audio_config", "audio_token_id"), release.audio_config.audio_token_id),
    ]:
        value = tiny
        for part in field_path:
            value = value[part]
        assert tokenizer.convert_ids_to_tokens(value) == RELEASE_TOKENS[release_id], field_path
    assert tokenizer.convert_ids_to_tokens(tiny["eos_token_id"]) == [RELEASE_TOKENS[i] for i in release.eos_token_id]
    assert tokenizer.image_token == "<|endoftext10|>" and tokenizer.audio_token == "<|endoftext11|>"
    special = {token.content for token in tokenizer.added_tokens_decoder.values() if token.special}
    assert {"<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|tool|>", "<|/tool|>"} <= special

    # Same key layout as the full-size model (layer indices aside), hence the same names the converter must produce.
    with torch.device("meta"):
        full_model = Phi4MultimodalForCausalLM(release)
    from safetensors import safe_open

    with safe_open(str(tiny_model / "model.safetensors"), "pt") as weights:
        tiny_keys = set(weights.keys())
    assert _layout(tiny_keys) == _layout(full_model.state_dict()) - {"lm_head.weight"}  # tied, as in the release


def test_tiny_chat_template_renders_like_the_release(tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    # microsoft's template: role tags, no newlines, <|end|> after each turn (Phi-4-mini's tokenizer_config.json).
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == "<|system|>S<|end|><|user|>Q<|end|><|assistant|>"


@pytest.fixture(scope="module")
def engine(tiny_model, swift_plugin):
    from swift.infer_engine import TransformersEngine

    return TransformersEngine(str(tiny_model), model_type="phi4_mm_native", torch_dtype=torch.float32)


def test_prompt_is_the_sft_template_token_by_token(engine, demo_data):
    from swift.infer_engine import InferRequest
    from swift.template.register import TEMPLATE_MAPPING

    sft = TEMPLATE_MAPPING["phi4_multimodal"]  # ms-swift's own template of the remote-code model
    # The format the SFT checkpoint saw (ms-swift 4.6's phi4_multimodal): fails when ms-swift changes it under us.
    assert (sft.prefix, sft.prompt, sft.chat_sep, sft.suffix) == (
        [],
        ["<|user|>\n{{QUERY}}<|end|>\n<|assistant|>\n"],
        ["<|end|>\n"],
        ["<|end|>"],
    )
    template, tokenizer = engine.template, engine.template.tokenizer
    image_id = engine.model.config.vision_config.image_token_id
    assert image_id != tokenizer.unk_token_id and tokenizer.convert_ids_to_tokens(image_id) == "<|endoftext10|>"
    image = str(next((demo_data / "images").glob("*.png")))
    question, response = "Is there a pleural effusion?", "<think>No.</think><answer>no</answer>"

    template.set_mode("transformers")
    prompt_ids = template.encode(InferRequest(messages=[{"role": "user", "content": question}], images=[image]))[
        "input_ids"
    ]
    count = prompt_ids.count(image_id)
    assert count > 0  # an image that produced no tokens would be invisible to the model
    query = "<|endoftext10|>" * count + question  # ms-swift puts the image where the (default) <image> tag is
    expected = sft.prompt[0].replace("{{QUERY}}", query)
    assert prompt_ids == tokenizer.encode(expected, add_special_tokens=False)

    template.set_mode("train")
    messages = [{"role": "user", "content": "<image>" + question}, {"role": "assistant", "content": response}]
    train_ids = template.encode(InferRequest(messages=messages, images=[image]))["input_ids"]
    assert train_ids == tokenizer.encode(expected + response + sft.suffix[0], add_special_tokens=False)
    template.set_mode("transformers")
