"""The vision LoRA merge vLLM's weights go through (utils/checkpoints/vision_lora.py), against PEFT's own merge."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from utils.checkpoints.vision_lora import VisionLora, VisionLoraError, VisionLoraMerger


@pytest.fixture(scope="module")
def peft_merged(tiny_model) -> dict[str, torch.Tensor]:
    from peft import PeftModel
    from transformers import Phi4MultimodalForCausalLM

    base = Phi4MultimodalForCausalLM.from_pretrained(str(tiny_model), dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, str(tiny_model / "vision-lora"), adapter_name="vision").merge_and_unload()
    return {name: tensor.detach() for name, tensor in merged.state_dict().items()}


def test_a_checkpoint_folder_merges_as_peft_merges_it(tiny_model, peft_merged):
    lora = VisionLora.from_folder(tiny_model / "vision-lora")
    assert len(lora.targets) == 8  # qkv, o, gate_up, down in each of the 2 layers
    merged = lora.merge(load_file(str(tiny_model / "model.safetensors")), use_own_tensors=True)
    for name, tensor in merged.items():
        assert torch.allclose(tensor, peft_merged[name], atol=1e-7, rtol=0), name
    moved = [
        name
        for name in merged
        if not torch.equal(merged[name], load_file(str(tiny_model / "model.safetensors"))[name])
    ]
    assert sorted(moved) == sorted(f"{module}.weight" for module in lora.targets)


def _live_state(tiny_model) -> dict[str, torch.Tensor]:
    """Weights named as a model carrying the adapter names them (`….base_layer.weight`, `….lora_A.vision.weight`)."""
    lora = VisionLora.from_folder(tiny_model / "vision-lora")
    state = {}
    for name, tensor in load_file(str(tiny_model / "model.safetensors")).items():
        module = name.removesuffix(".weight")
        state[f"{module}.base_layer.weight" if module in lora.targets else name] = tensor
    for module, ab, tensor in lora.tensors:
        state[f"{module}.lora_{ab}.vision.weight"] = tensor
    return state


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), pieces=st.integers(1, 40))
def test_a_sync_split_anywhere_merges_as_one_call(tiny_model, peft_merged, seed, pieces):
    """ms-swift's server-mode sync sends buckets of a fixed size: a module's base weight and LoRA halves may come in
    different calls, in any order. The merged result is the same."""
    state = _live_state(tiny_model)
    names = list(state)
    order = torch.randperm(len(names), generator=torch.Generator().manual_seed(seed)).tolist()
    merger = VisionLoraMerger(VisionLora.from_folder(tiny_model / "vision-lora"))
    ready: dict[str, torch.Tensor] = {}
    for chunk in torch.tensor(order).chunk(pieces):
        ready.update(merger.feed({names[i]: state[names[i]] for i in chunk.tolist()}))
    assert merger.incomplete() == []
    assert set(ready) == set(load_file(str(tiny_model / "model.safetensors")))
    for name, tensor in ready.items():
        assert torch.allclose(tensor, peft_merged[name], atol=1e-7, rtol=0), name


def test_a_module_without_its_lora_is_an_error_naming_it(tiny_model):
    state = _live_state(tiny_model)
    lora = VisionLora.from_folder(tiny_model / "vision-lora")
    without_b = {k: v for k, v in state.items() if k != "model.layers.1.mlp.down_proj.lora_B.vision.weight"}
    with pytest.raises(VisionLoraError, match=r"model\.layers\.1\.mlp\.down_proj, has only A W"):
        lora.merge(without_b)
    # a PEFT tuner over the model hides the vision LoRA: base weights alone for the LoRA'd modules
    bare = {k: v for k, v in state.items() if ".lora_" not in k}
    with pytest.raises(VisionLoraError, match="8 vision-LoRA modules incomplete"):
        lora.merge(bare)
    with pytest.raises(VisionLoraError, match="a LoRA other than the vision LoRA"):
        lora.merge({**state, "model.layers.0.mlp.down_proj.lora_A.default.weight": torch.zeros(1)})
