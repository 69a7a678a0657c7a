"""The vision LoRA merged into plain weights, for engines that hold one set of weights (vLLM).

Phi-4-MM runs its vision LoRA whenever a prompt carries an image. An engine with a single LoRA slot cannot hold it
beside a trained adapter, so the weights it holds are the merged ones: `W + (B @ A) * lora_alpha / r`, PEFT's
merge. Names are the native ones: base `model.layers.0.mlp.down_proj.weight` (or `….base_layer.weight`, as a model
carrying the adapter names it), LoRA `model.layers.0.mlp.down_proj.lora_A.vision.weight` (a live model's
state dict). PEFT's saved form is read too: `base_model.model.` before every name and `lora_A.weight` without the
adapter's name (a `vision-lora/` folder; ms-swift's weight sync names a model carrying the adapter so).

>>> import torch
>>> lora = VisionLora(scaling=2.0, targets=frozenset({"m"}))
>>> weights = {"m.base_layer.weight": torch.zeros(2, 2), "m.lora_A.vision.weight": torch.ones(1, 2),
...            "m.lora_B.vision.weight": torch.ones(2, 1)}
>>> lora.merge(weights)["m.weight"].tolist()
[[2.0, 2.0], [2.0, 2.0]]
>>> saved = {"base_model.model." + k.replace(".vision", "").replace(".base_layer", ""): v for k, v in weights.items()}
>>> lora.merge(saved)["m.weight"].tolist()
[[2.0, 2.0], [2.0, 2.0]]
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch

ADAPTER_NAME = "vision"
_LIVE = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>A|B)(\.vision)?\.weight$")
_PEFT_PREFIX = "base_model.model."
_SAVED = re.compile(r"^base_model\.model\.(?P<module>.+)\.lora_(?P<ab>A|B)\.weight$")


class VisionLoraError(ValueError):
    """The weights and the vision LoRA do not fit together; merging would leave a module without its LoRA."""


@dataclass(frozen=True)
class VisionLora:
    """A vision LoRA's merge settings: its scaling, the modules it applies to and, read from a folder, its tensors
    (module, `A` or `B`, tensor)."""

    scaling: float
    targets: frozenset[str] = frozenset()
    tensors: tuple[tuple[str, str, torch.Tensor], ...] = ()

    @classmethod
    def from_folder(cls, folder: str | Path) -> VisionLora:
        """Read `adapter_config.json` and `adapter_model.safetensors` of a PEFT folder such as `vision-lora/`."""
        from safetensors.torch import load_file

        folder = Path(folder)
        config = json.loads((folder / "adapter_config.json").read_text())
        for unsupported in ("use_rslora", "use_dora", "rank_pattern", "alpha_pattern"):
            if config.get(unsupported):
                raise VisionLoraError(f"{folder}/adapter_config.json: {unsupported} is set; only plain LoRA merges")
        tensors = []
        for name, tensor in load_file(str(folder / "adapter_model.safetensors")).items():
            match = _SAVED.match(name)
            if not match:
                raise VisionLoraError(f"{folder}/adapter_model.safetensors: unexpected tensor {name}")
            tensors.append((match["module"], match["ab"], tensor))
        targets = frozenset(module for module, _, _ in tensors)
        return cls(scaling=config["lora_alpha"] / config["r"], targets=targets, tensors=tuple(tensors))

    def merge(self, weights: dict[str, torch.Tensor], use_own_tensors: bool = False) -> dict[str, torch.Tensor]:
        """Native weights with every vision-LoRA'd linear merged and the LoRA tensors dropped, all in one go.

        The LoRA comes with the weights (`….lora_A.vision.weight`, a live model's state dict), or from this object's
        own tensors (`use_own_tensors`, a checkpoint folder whose `vision-lora/` lies beside). Raises
        VisionLoraError when a LoRA'd module lacks its base weight or a LoRA half, or the base weight of a module
        this LoRA applies to comes without its LoRA: the merged weights would not be the model's.
        """
        merger = VisionLoraMerger(self)
        if use_own_tensors:
            merger.feed({f"{module}.lora_{ab}.weight": tensor for module, ab, tensor in self.tensors})
        merged = merger.feed(weights)
        if merger.incomplete():
            first = merger.incomplete()[0]
            raise VisionLoraError(
                f"{len(merger.incomplete())} vision-LoRA modules incomplete (first: {first[0]}, has only "
                f"{first[1]}); a model whose vision LoRA is not active (a PEFT tuner over it) cannot be merged"
            )
        return merged



class VisionLoraMerger:
    """Merges a stream of weights that may split a module's base weight and LoRA halves across calls (a weight
    sync sends buckets of a fixed size). Each module is released once its base weight, A and B have all come;
    `incomplete()` lists the modules still waiting.

    >>> merger = VisionLoraMerger(VisionLora(scaling=1.0, targets=frozenset({"m"})))
    >>> merger.feed({"m.base_layer.weight": torch.zeros(1, 1), "m.lora_A.vision.weight": torch.ones(1, 1)})
    {}
    >>> merger.incomplete()
    [('m', 'A W')]
    >>> merger.feed({"m.lora_B.vision.weight": torch.ones(1, 1), "n.weight": torch.ones(1)})
    {'n.weight': tensor([1.]), 'm.weight': tensor([[1.]])}
    """

    def __init__(self, lora: VisionLora) -> None:
        self.lora = lora
        self.targets = lora.targets
        self.pending: dict[str, dict[str, torch.Tensor]] = {}

    def feed(self, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The weights ready to load: every non-LoRA'd one, and each LoRA'd module completed by this call, merged."""
        ready: dict[str, torch.Tensor] = {}
        touched = []
        for name, tensor in weights.items():
            name = name.removeprefix(_PEFT_PREFIX)
            if ".lora_" in name and not _LIVE.match(name):
                raise VisionLoraError(f"{name}: a LoRA other than the vision LoRA cannot be merged here")
            match = _LIVE.match(name)
            if match:
                module, part = match["module"], match["ab"]
            else:
                name = name.replace(".base_layer.", ".")
                module = name.removesuffix(".weight")
                if module not in self.targets or not name.endswith(".weight"):
                    ready[name] = tensor
                    continue
                part = "W"
            self.pending.setdefault(module, {})[part] = tensor
            touched.append(module)
        for module in dict.fromkeys(touched):
            parts = self.pending[module]
            if {"W", "A", "B"} <= set(parts):
                base = parts["W"]
                delta = (parts["B"].float() @ parts["A"].float()) * self.lora.scaling
                ready[f"{module}.weight"] = (base.float() + delta.to(base.device)).to(base.dtype)
                del self.pending[module]
        return ready

    def incomplete(self) -> list[tuple[str, str]]:
        """(module, the parts it has) for every module still waiting for a part."""
        return [(module, " ".join(sorted(parts))) for module, parts in sorted(self.pending.items())]
