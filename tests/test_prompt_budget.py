"""tools/check_prompt_length.py: the lengths it reports from image sizes are those of the real template with the
images processed (ms-swift's encode, pixels and all)."""

from __future__ import annotations

import json

import pytest

from tests.grpo_helpers import write_grpo_rows


@pytest.mark.parametrize("dynamic_hd", [1, 4])
def test_measured_lengths_equal_the_encoded_prompts(dynamic_hd, tiny_model, demo_data, swift_plugin, tmp_path):
    from swift.infer_engine import InferRequest, TransformersEngine

    from tools.check_prompt_length import measure

    dataset = write_grpo_rows(
        demo_data / "annotations" / "eval" / "test_compare_vqa.json", demo_data / "images", tmp_path / "rows.jsonl", 4
    )
    budget = measure(str(tiny_model), dataset, max_length=60, dynamic_hd=dynamic_hd, model_type="phi4_mm_native")
    engine = TransformersEngine(str(tiny_model), model_type="phi4_mm_native")
    engine.template.processor.image_processor.dynamic_hd = dynamic_hd
    engine.template.set_mode("transformers")
    rows = [json.loads(line) for line in dataset.read_text().splitlines()]
    encoded = [
        len(engine.template.encode(InferRequest(messages=row["messages"], images=row["images"]))["input_ids"])
        for row in rows
    ]
    assert [length.total for length in budget.lengths] == encoded
    assert all(length.image_tokens > 0 for length in budget.lengths)
    assert [p.line for p in budget.over_limit] == [i for i, n in enumerate(encoded, 1) if n > 60]  # 1-based lines
