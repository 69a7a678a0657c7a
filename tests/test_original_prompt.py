"""`--prompt_format original`: the original CheX-Phi4MM `evaluate.py`'s prompt, eos and decoding.

The expected token sequence is built by hand from that file's f-string, `f"{USER}{refs}{q}{END}{ASSIST}"` with
`refs = "".join(f"<|image_{k+1}|>" ...)`, split the way microsoft's remote-code `Phi4MMProcessor` splits it: on
`<\\|image_\\d+\\|>`, each chunk tokenized on its own, each image's placeholder run in between.
"""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image

from utils.evaluation.runner import main as evaluate_main

USER, ASSIST, END = "<|user|>", "<|assistant|>", "<|end|>"  # the original evaluate.py's constants


def _by_hand(tokenizer, question: str, image_token_id: int, counts: list[int]) -> list[int]:
    refs = "".join(f"<|image_{k + 1}|>" for k in range(len(counts)))
    prompt = f"{USER}{refs}{question}{END}{ASSIST}"
    chunks = [tokenizer(chunk).input_ids for chunk in re.split(r"<\|image_\d+\|>", prompt)]
    ids = list(chunks[0])
    for count, chunk in zip(counts, chunks[1:]):
        ids += [image_token_id] * count + list(chunk)
    return ids


@pytest.fixture(scope="module")
def original_engine(tiny_model, swift_plugin):
    from utils.evaluation.engine import EngineConfig, load_engine

    return load_engine(
        EngineConfig(model_path=str(tiny_model), torch_dtype="float32", attn_impl="sdpa", prompt_format="original")
    )


@pytest.mark.parametrize("sizes", [[(112, 112)], [(300, 200), (112, 160)]])
def test_prompt_ids_are_the_original_f_string(original_engine, tmp_path, sizes):
    from swift.infer_engine import InferRequest

    from swift_patches.image_processor import image_token_counts

    template = original_engine.template
    paths = []
    for i, size in enumerate(sizes):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.new("RGB", size, (40 * i, 90, 160)).save(paths[-1])
    question = "Is there a pleural effusion in the left lung?"
    template.set_mode("transformers")
    encoded = template.encode(
        InferRequest(messages=[{"role": "user", "content": "<image>" * len(paths) + question}], images=paths)
    )
    processor = template.processor.image_processor
    crop = getattr(processor, "crop_size", None) or processor.size["height"]
    features = processor([Image.open(p).convert("RGB") for p in paths], return_tensors="pt")
    counts = image_token_counts(features, crop)
    expected = _by_hand(template.tokenizer, question, template.config.vision_config.image_token_id, counts)
    assert encoded["input_ids"] == expected


def test_original_stops_at_the_tokenizers_eos_alone(original_engine, tiny_model, swift_plugin):
    tokenizer = original_engine.template.tokenizer
    assert original_engine.generation_config.eos_token_id == tokenizer.eos_token_id  # not [<|endoftext|>, <|end|>]


def test_prompt_format_is_recorded_in_results_and_fingerprint(tiny_model, demo_data, tmp_path):
    out = tmp_path / "eval"
    args = ["--model_path", str(tiny_model), "--data_root", str(demo_data), "--output_dir", str(out)]
    args += ["--splits", "test_basic", "--limit", "2", "--max_new_tokens", "6", "--attn_impl", "sdpa"]
    assert evaluate_main([*args, "--prompt_format", "original"]) == 0
    results = json.loads((out / "test_basic" / "results.json").read_text())
    assert results["prompt_format"] == "original"
    assert json.loads((out / "test_basic" / "parts" / "fingerprint.json").read_text())["prompt_format"] == "original"
    # A resumed run with the other prompt would mix two evaluations: refused.
    assert evaluate_main([*args, "--prompt_format", "sft"]) == 2
