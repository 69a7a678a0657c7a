"""Test-only helpers that run in the vLLM environment (.venv-vllm): read what a vLLM engine holds, and, as an
ms-swift plugin (`--external_plugins tests/vllm_probe.py`), dump after every GRPO weight sync what vLLM holds next to
the policy's weights merged by PEFT's own code.

What vLLM holds is read through vLLM's own kernels: its CPU build repacks each linear layer's weight into a oneDNN
handle and drops the tensor, so a linear's weight is read back as `apply(layer, I)` (x @ W^T at x = I). Names are
vLLM's; the policy's are the native ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch


@torch.no_grad()
def held_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every weight a vLLM model holds, by vLLM's parameter name; linear layers read through their kernel."""
    from vllm.model_executor.layers.linear import LinearBase

    held = {}
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        if isinstance(module, LinearBase):
            eye = torch.eye(module.input_size, dtype=torch.float32)
            dtype = next((p.dtype for p in module.parameters() if p.numel()), torch.float32)
            held[f"{prefix}weight"] = module.quant_method.apply(module, eye.to(dtype)).float().t().contiguous()
            if getattr(module, "bias", None) is not None:
                held[f"{prefix}bias"] = module.bias.detach().float().clone()
            continue
        if any(isinstance(parent, LinearBase) for parent in _parents(model, module_name)):
            continue
        for name, parameter in module.named_parameters(recurse=False):
            held[f"{prefix}{name}"] = parameter.detach().float().clone()
    return held


def _parents(model, module_name: str):
    parts = module_name.split(".") if module_name else []
    return [model.get_submodule(".".join(parts[:i])) for i in range(1, len(parts))]


@torch.no_grad()
def policy_merged_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The policy's weights with its vision LoRA merged by PEFT (`get_delta_weight`), by native name."""
    from peft.tuners.lora import LoraLayer

    merged = {}
    lora_modules = {name: module for name, module in model.named_modules() if isinstance(module, LoraLayer)}
    for name, parameter in model.named_parameters():
        if ".lora_" in name:
            continue
        module_name = name.rsplit(".base_layer.", 1)[0] if ".base_layer." in name else None
        value = parameter.detach().float().clone()
        if module_name in lora_modules and name.endswith(".base_layer.weight"):
            value = value + lora_modules[module_name].get_delta_weight("vision").float()
        merged[name.replace(".base_layer.", ".")] = value
    return merged


def _install_sync_probe() -> None:
    """Wrap the GRPO trainer's weight sync: after each, write `sync_probe/sync<N>.safetensors` (vLLM's weights)
    and `sync_probe/policy<N>.safetensors` (the policy's, merged), N counting syncs from 1."""
    from safetensors.torch import save_file
    from swift.trainers import TrainerFactory

    trainer_cls = TrainerFactory.TRAINER_MAPPING["grpo"]
    module_name, class_name = trainer_cls.rsplit(".", 1)
    cls = getattr(__import__(module_name, fromlist=[class_name]), class_name)
    original = cls._move_model_to_vllm

    def _move_model_to_vllm(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        folder = Path(self.args.output_dir) / "sync_probe"
        folder.mkdir(parents=True, exist_ok=True)
        count = len(list(folder.glob("sync*.safetensors"))) + 1
        save_file(held_weights(self.engine.inner_model), str(folder / f"sync{count}.safetensors"))
        policy = self.accelerator.unwrap_model(self.model)
        save_file(policy_merged_weights(policy), str(folder / f"policy{count}.safetensors"))
        (folder / f"sync{count}.step").write_text(str(self.state.global_step))
        return result

    cls._move_model_to_vllm = _move_model_to_vllm


if os.environ.get("CHEX_VLLM_SYNC_PROBE") == "1":
    _install_sync_probe()


def _engine_checks(model_path: str, output: str, items_file: str) -> None:
    """Build the evaluation's vLLM engine in-process; write what it holds (`held.safetensors`), its greedy
    generations with log-probs for the items in `items_file` (`generations.json`: a JSON list of [question, [image
    paths]]), and how the two refusals read (`refusals.json`): a text-only prompt, and the native checkpoint taken
    without our adapter."""
    import json

    from safetensors.torch import save_file
    from swift.infer_engine import InferRequest, RequestConfig
    from swift.utils import import_external_file
    from vllm.engine.arg_utils import EngineArgs

    from utils.evaluation.engine import EngineConfig, generate, load_engine
    from utils.evaluation.results import EvalItem
    from utils.vllm_env import check_engine

    repo = Path(__file__).resolve().parents[1]
    import_external_file(str(repo / "plugin.py"))
    engine = load_engine(
        EngineConfig(
            model_path=model_path,
            backend="vllm",
            torch_dtype="float32",
            vllm_kwargs={"enforce_eager": True, "max_model_len": 1024},
        )
    )
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    save_file(held_weights(engine.inner_model), str(out / "held.safetensors"))
    items = [
        EvalItem(i, {"question": q}, tuple(paths))
        for i, (q, paths) in enumerate(json.loads(Path(items_file).read_text()))
    ]
    (out / "generations.json").write_text(json.dumps(generate(engine, items, max_new_tokens=12, logprobs=True)))
    refusals = {}
    try:
        responses = engine.infer(
            [InferRequest(messages=[{"role": "user", "content": "Is there an effusion?"}])], RequestConfig()
        )
        refusals["text_only_answered"] = repr(responses)[:2000]
    except Exception as error:  # the message is what the test reads
        refusals["text_only"] = f"{type(error).__name__}: {error}"
    plain = EngineArgs(model=model_path, dtype="float32").create_model_config()
    try:
        check_engine(plain)
    except RuntimeError as error:
        refusals["text_only_checkpoint"] = str(error)
    refusals["plain_architecture"] = plain.architecture
    (out / "refusals.json").write_text(json.dumps(refusals, indent=2))


if __name__ == "__main__":
    import sys

    _engine_checks(*sys.argv[1:4])
