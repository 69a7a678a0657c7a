"""Build a deterministic tiny native Phi-4-multimodal checkpoint (~1 MB) with no model hub.

    python tools/make_tiny_model.py --output checkpoints/tiny-phi4mm --seed 0

The folder is laid out like microsoft/Phi-4-multimodal-instruct in the transformers-native format:
`config.json` + `model.safetensors` (Phi4MultimodalForCausalLM), a byte-level BPE tokenizer trained here on the
synthetic corpus with Phi-4's special tokens and chat template, `preprocessor_config.json` /
`processor_config.json`, and a `vision-lora/` PEFT adapter (adapter name `vision`, on the language model's
qkv/o/gate_up/down projections, same target regex as microsoft's release). Same seed, same tensors.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from utils.checkpoints.phi4mm import (  # noqa: E402
    AUDIO_TOKEN,
    CHAT_TEMPLATE,
    END_TOKEN,
    ENDOFTEXT_TOKEN,
    EXTRA_SPECIAL_TOKENS,
    IMAGE_TOKEN,
    native_processor_files,
)
from utils.cli import ArgumentParser  # noqa: E402
from utils.data.synthetic_cxr import corpus  # noqa: E402
from utils.io import apply_umask  # noqa: E402

logger = logging.getLogger("make_tiny_model")
DEFAULT_OUTPUT = Path(__file__).resolve().parents[1] / "checkpoints" / "tiny-phi4mm"

# The release's special tokens with their roles (utils/checkpoints/phi4mm.py); only the ids differ in the tiny
# vocabulary, and every id the model uses is read from its config, never looked up by string.
SPECIAL_TOKENS = [ENDOFTEXT_TOKEN, IMAGE_TOKEN, AUDIO_TOKEN, "<|system|>", "<|user|>", "<|assistant|>", END_TOKEN]
SPECIAL_TOKENS += ["<|tool|>", "<|/tool|>"]
# microsoft's vision-lora/adapter_config.json targets exactly these language-model projections.
VISION_LORA_TARGETS = r"model.layers.\d+.((self_attn.(qkv|o)_proj)|(mlp.(gate_up|down)_proj))"
CROP_SIZE, PATCH_SIZE = 56, 14  # 4x4 patches a crop keeps images at tens of tokens on CPU


def build_tokenizer(seed: int, vocab_size: int):
    """Train a byte-level BPE on the synthetic corpus; returns a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(corpus(seed), trainer)
    # bos, eos and pad are all `<|endoftext|>` in microsoft's tokenizer_config.json; `<|end|>` ends a turn and is the
    # second eos id of the model's config.
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=ENDOFTEXT_TOKEN,
        eos_token=ENDOFTEXT_TOKEN,
        pad_token=ENDOFTEXT_TOKEN,
        unk_token=None,
        chat_template=CHAT_TEMPLATE,
        model_max_length=131072,
        extra_special_tokens=dict(EXTRA_SPECIAL_TOKENS),
    )


# microsoft's release: transformers' Phi4MultimodalConfig defaults, 448-pixel crops, a 200,064-token embedding, and
# vision LoRA rank 256 (tools/gpu_plan.py).
FULL_SIZE_VOCAB, FULL_SIZE_CROP, FULL_SIZE_LORA_RANK = 200_064, 448, 256
TINY_SIZES = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}
# vLLM's CPU attention refuses a head size of 16: the vLLM tests use this variant (head_dim 64), the rest the
# default one. Its weights are drawn 10x wider (initializer_range 0.2), so that greedy decoding picks clear winners
# that vary with the image, not near-ties: token-for-token comparisons between engines then mean something.
TINY_SIZES_HEAD_DIM_64 = {
    **TINY_SIZES,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "initializer_range": 0.2,
}
TINY_VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
TINY_AUDIO = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_blocks": 1,
    "num_attention_heads": 2,
    "ext_pw_out_channel": 32,
    "depthwise_separable_out_channel": 32,
    "nemo_conv_channels": 32,
}


def build_config(tokenizer, full_size: bool = False, vocab_size: int | None = None, head_dim: int = 16):
    """transformers' defaults (microsoft's release) with sizes shrunk (`full_size`: kept), the tiny vocabulary's ids of
    the release's special tokens, and the two fields where microsoft's config.json departs from transformers'
    defaults: tied embeddings and rotary embeddings on 75 % of each head. `vocab_size`: the embedding rows (default:
    the tokenizer's size; the release's is larger than its tokenizer, 200,064). `head_dim`: 16 (the default tiny
    model) or 64 (the tiny model vLLM's CPU attention accepts)."""
    from transformers import Phi4MultimodalConfig

    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    crop = FULL_SIZE_CROP if full_size else CROP_SIZE
    return Phi4MultimodalConfig(
        vocab_size=vocab_size or (FULL_SIZE_VOCAB if full_size else len(tokenizer)),
        **({} if full_size else {16: TINY_SIZES, 64: TINY_SIZES_HEAD_DIM_64}[head_dim]),
        bos_token_id=ids[ENDOFTEXT_TOKEN],
        pad_token_id=ids[ENDOFTEXT_TOKEN],
        eos_token_id=[ids[ENDOFTEXT_TOKEN], ids[END_TOKEN]],
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.75},
        vision_config=dict(
            **({} if full_size else TINY_VISION),
            image_size=crop,
            crop_size=crop,
            patch_size=PATCH_SIZE,
            image_token_id=ids[IMAGE_TOKEN],
        ),
        audio_config=dict(**({} if full_size else TINY_AUDIO), audio_token_id=ids[AUDIO_TOKEN]),
    )


def add_vision_lora(model, output: Path, rank: int) -> None:
    """Write `vision-lora/` (PEFT layout) with non-zero B so the adapter visibly changes the model's outputs."""
    import shutil

    import torch
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        lora_dropout=0.0,
        target_modules=VISION_LORA_TARGETS,
        task_type="CAUSAL_LM",
        bias="none",
    )
    peft_model = get_peft_model(model, config, adapter_name="vision")
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B.vision" in name:
                param.normal_(0.0, 0.02)  # a released adapter is trained, hence non-zero
    peft_model.save_pretrained(str(output / "_adapters"))
    (output / "_adapters" / "vision").rename(output / "vision-lora")
    shutil.rmtree(output / "_adapters")  # only PEFT's generated README is left there
    adapter_config = json.loads((output / "vision-lora" / "adapter_config.json").read_text())
    adapter_config["base_model_name_or_path"] = "TBA"  # as in microsoft's release: resolved at load time
    (output / "vision-lora" / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2) + "\n")


def build(
    output: Path,
    seed: int,
    vocab_size: int = 1200,
    lora_rank: int = 4,
    full_size: bool = False,
    model_vocab_size: int | None = None,
    device: str = "cpu",
    head_dim: int = 16,
) -> Path:
    """Build the checkpoint into `output` (written to a sibling temp folder first, then renamed).

    `full_size`: microsoft's full-size architecture (release sizes, 200,064 embedding rows, vision LoRA rank 256)
    with random bf16 weights, built on `device`, for measuring time and memory (`bench/gpu_bench.py`): about 11 GB
    on disk, and its answers are noise. `model_vocab_size`: embedding rows beyond the tokenizer's, as the release has.
    `head_dim`: the text model's attention head size, 16 or 64 (vLLM's CPU attention needs 64).
    """
    import shutil

    import torch
    from transformers import Phi4MultimodalForCausalLM

    random.seed(seed)
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(seed, vocab_size)
    if full_size:
        lora_rank = FULL_SIZE_LORA_RANK
    if head_dim not in (16, 64) or (full_size and head_dim != 16):
        raise ValueError(f"head_dim={head_dim}: the tiny model has 16 or 64 (the full-size model has its own)")
    config = build_config(tokenizer, full_size, model_vocab_size, head_dim=head_dim)
    dtype = torch.bfloat16 if full_size else torch.float32
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # 5.6 B parameters are built in bf16 directly, not in fp32 first
    try:
        with torch.device(device):
            model = Phi4MultimodalForCausalLM(config)
    finally:
        torch.set_default_dtype(default_dtype)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    staging = output.with_name(f".{output.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    for name, content in native_processor_files(FULL_SIZE_CROP if full_size else CROP_SIZE, PATCH_SIZE).items():
        (staging / name).write_text(json.dumps(content, indent=2) + "\n")
    add_vision_lora(model, staging, lora_rank)
    for weights in staging.rglob("*.safetensors"):  # safetensors writes 0600 whatever the umask
        apply_umask(weights)
    shutil.rmtree(output, ignore_errors=True)
    staging.rename(output)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="checkpoint folder (%(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vocab-size", type=int, default=1200)
    parser.add_argument(
        "--head-dim", type=int, choices=(16, 64), default=16, help="text attention head size (vLLM: 64)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = build(args.output, args.seed, args.vocab_size, head_dim=args.head_dim)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    logger.info("tiny Phi-4-MM written to %s (%.2f MB)", out, size / 1e6)
    return 0


if __name__ == "__main__":
    sys.exit(main())
