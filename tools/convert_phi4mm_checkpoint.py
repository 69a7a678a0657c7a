r"""Convert a remote-code Phi-4-MM checkpoint (microsoft's original format, or one fine-tuned in it, such as
CheX-Phi4MM-SFT with its trained vision LoRA inside the weights) into the native transformers layout.

    python tools/convert_phi4mm_checkpoint.py checkpoints/restore_MIMIC_Think_phi4_ep1_lr6e-5 \
        checkpoints/chex-phi4mm-sft

Output: native `config.json` + weights, `vision-lora/` (and `speech-lora/` when present) PEFT adapters carrying the
checkpoint's LoRA weights, native `preprocessor_config.json` / `processor_config.json`, and the tokenizer files.
Every source tensor must land somewhere: keys with no place in the native model, and native weights the source
does not provide, are errors that list them (exit code 2). Written to a temporary folder, then renamed.
Mapping rules: utils/checkpoints/phi4mm.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.checkpoints.phi4mm import (  # noqa: E402
    ADAPTERS,
    AUDIO_TOKEN,
    DEFAULT_TARGETS,
    END_TOKEN,
    ENDOFTEXT_TOKEN,
    EXTRA_SPECIAL_TOKENS,
    IMAGE_TOKEN,
    classify_key,
    convert_config,
    native_processor_files,
)
from utils.cli import ArgumentParser  # noqa: E402
from utils.io import InputError, apply_umask, read_json  # noqa: E402

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
)


def load_source_tensors(folder: Path) -> dict:
    """Every tensor of the checkpoint's safetensors files."""
    from safetensors.torch import load_file

    shards = sorted(folder.glob("*.safetensors"))
    if not shards:
        raise InputError(f"{folder}: no *.safetensors weights found")
    tensors = {}
    for shard in shards:
        tensors.update(load_file(str(shard)))
    return tensors


def special_token_ids(folder: Path) -> dict[str, int]:
    """Ids of the release's special tokens in the checkpoint's `tokenizer.json` (the placeholders and both eos)."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise InputError(f"{path}: missing (the converter reads the image/audio placeholder and eos ids from it)")
    added = {token["content"]: token["id"] for token in read_json(path).get("added_tokens", [])}
    wanted = (IMAGE_TOKEN, AUDIO_TOKEN, ENDOFTEXT_TOKEN, END_TOKEN)
    missing = [token for token in wanted if token not in added]
    if missing:
        raise InputError(f"{path}: no added token {', '.join(missing)} (not a Phi-4-multimodal tokenizer?)")
    return {token: added[token] for token in wanted}


def split_tensors(tensors: dict) -> tuple[dict, dict[str, dict], list[str]]:
    """(native base tensors, {adapter: PEFT tensors}, keys that map nowhere)."""
    base, adapters, unknown = {}, {name: {} for name in ADAPTERS}, []
    for key, tensor in tensors.items():
        kind, new_key = classify_key(key)
        if kind == "unknown":
            unknown.append(key)
        elif kind == "base":
            base[new_key] = tensor
        else:
            adapters[kind][new_key] = tensor
    return base, {name: t for name, t in adapters.items() if t}, unknown


def _adapter_config(tensors: dict, settings: dict):
    """PEFT LoraConfig for one adapter: rank from the weights, alpha and dropout from the remote config."""
    import re

    from peft import LoraConfig

    rank = next(t.shape[0] for k, t in tensors.items() if ".lora_A." in k)
    modules = sorted({k.removeprefix("base_model.model.").rsplit(".lora_", 1)[0] for k in tensors})
    targets = DEFAULT_TARGETS if all(re.fullmatch(DEFAULT_TARGETS, m) for m in modules) else modules
    return LoraConfig(
        r=rank,
        lora_alpha=settings.get("lora_alpha", rank),
        lora_dropout=float(settings.get("dp", 0.0)),
        target_modules=targets,
        task_type="CAUSAL_LM",
        bias="none",
    )


def convert(source: Path, output: Path) -> dict:
    """Convert `source` into `output` (see the module docstring); returns counts for the report."""
    import torch
    from safetensors.torch import save_file
    from transformers import Phi4MultimodalConfig, Phi4MultimodalForCausalLM

    remote = read_json(source / "config.json")
    text, vision, audio, lora_settings = convert_config(remote)
    # As transformers' official script: eos is the pair <|endoftext|>, <|end|> (199999, 200020 in the release); the
    # placeholders are <|endoftext10|> / <|endoftext11|>. Read from the tokenizer, so any vocabulary converts right.
    ids = special_token_ids(source)
    text["eos_token_id"] = [ids[ENDOFTEXT_TOKEN], ids[END_TOKEN]]
    vision["image_token_id"], audio["audio_token_id"] = ids[IMAGE_TOKEN], ids[AUDIO_TOKEN]
    try:
        config = Phi4MultimodalConfig(**text, vision_config=vision, audio_config=audio)
    except (TypeError, ValueError) as error:
        raise InputError(f"{source / 'config.json'}: cannot build a native config ({error})") from None
    base, adapters, unknown = split_tensors(load_source_tensors(source))
    with torch.device("meta"):
        model = Phi4MultimodalForCausalLM(config)
    expected = set(model.state_dict())
    unmapped = sorted(set(base) - expected) + sorted(unknown)
    if unmapped:
        raise InputError(f"{source}: {len(unmapped)} tensors have no place in the native model: {', '.join(unmapped)}")
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    missing = sorted(expected - set(base) - tied)
    if missing:
        raise InputError(
            f"{source}: {len(missing)} native weights are missing from the checkpoint: {', '.join(missing)}"
        )
    try:
        model.load_state_dict(base, strict=False, assign=True)
    except RuntimeError as error:  # shapes that disagree with the config: torch lists every one
        raise InputError(f"{source}: weights do not match config.json: {error}") from None
    model.tie_weights()

    staging = output.with_name(f".{output.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save_pretrained(staging)
    for name, tensors in adapters.items():
        folder = staging / f"{name}-lora"
        _adapter_config(tensors, lora_settings.get(name, {})).save_pretrained(str(folder))
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / "adapter_model.safetensors"))
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, staging / name)
    if (staging / "tokenizer_config.json").is_file():
        tokenizer_config = read_json(staging / "tokenizer_config.json")
        tokenizer_config.pop("auto_map", None)
        tokenizer_config["processor_class"] = "Phi4MultimodalProcessor"
        tokenizer_config["extra_special_tokens"] = dict(EXTRA_SPECIAL_TOKENS)  # as the official script
        (staging / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2) + "\n")
    preprocessor = (
        read_json(source / "preprocessor_config.json") if (source / "preprocessor_config.json").is_file() else {}
    )
    files = native_processor_files(
        crop_size=config.vision_config.crop_size,
        patch_size=config.vision_config.patch_size,
        dynamic_hd=int(preprocessor.get("dynamic_hd", 36)),
        **{k: v for k, v in preprocessor.items() if k.startswith("audio_")},
    )
    for name, content in files.items():
        (staging / name).write_text(json.dumps(content, indent=2) + "\n")
    for weights in staging.rglob("*.safetensors"):  # safetensors writes 0600 whatever the umask
        apply_umask(weights)
    shutil.rmtree(output, ignore_errors=True)
    staging.rename(output)
    return {"base": len(base), **{f"{name}-lora": len(t) for name, t in adapters.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="remote-code checkpoint folder")
    parser.add_argument("output", type=Path, help="native checkpoint folder to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    args = parser.parse_args(argv)
    if args.output.exists() and not args.overwrite:
        print(f"error: {args.output} exists (use --overwrite to replace it)", file=sys.stderr)
        return 2
    try:
        counts = convert(args.source, args.output)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.output}: " + ", ".join(f"{n} {name} tensors" for name, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
