"""The evaluation core's model half: build an ms-swift inference engine and turn items into greedy generations.

Prompts go through the model's ms-swift template (the user turn is one `<image>` per image, then the question), so
the chat format and image tokens are the ones training used. `prompt_format="original"` uses the original
CheX-Phi4MM `evaluate.py`'s prompt instead (`utils.checkpoints.phi4mm.PROMPT_FORMATS`), stops at the tokenizer's
eos alone (it passed `eos_token_id=tokenizer.eos_token_id` to `generate`) and keeps special tokens in the decoded
response, as that script did. Engines: `transformers` (ms-swift's
TransformersEngine, batched `generate`, the default) or `vllm` (ms-swift's VllmEngine; for `phi4_mm_native` through
our adapter, swift_patches/vllm_phi4mm.py, which holds the weights with the vision LoRA merged).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from utils.checkpoints.phi4mm import NATIVE_MODEL_TYPE, PROMPT_FORMATS
from utils.evaluation.results import EvalItem
from utils.io import InputError
from utils.log import get_logger
from utils.precision import resolve_precision
from utils.tokens import token_bytes, token_text

logger = get_logger("inference")


@dataclass(frozen=True)
class EngineConfig:
    """How to load the model (all paths as given on the command line)."""

    model_path: str
    model_type: str = "phi4_mm_native"
    adapters: tuple[str, ...] = ()
    backend: str = "transformers"
    batch_size: int = 16
    torch_dtype: str = "auto"
    attn_impl: str = "auto"
    dynamic_hd: int | None = None
    device_map: str | None = None
    prompt_format: str = "sft"
    vllm_kwargs: dict = field(default_factory=dict)


def load_engine(config: EngineConfig):
    """The ms-swift engine for `config` (our plugin must be installed first: `utils.evaluation.runner` does it)."""
    import torch

    if not os.path.isdir(config.model_path):
        raise FileNotFoundError(f"--model_path {config.model_path}: no such checkpoint folder")
    for adapter in config.adapters:
        if not os.path.isdir(adapter):
            raise FileNotFoundError(f"--adapters {adapter}: no such adapter folder")
    if config.prompt_format not in PROMPT_FORMATS:
        raise InputError(f"--prompt_format {config.prompt_format!r}: choose one of {', '.join(PROMPT_FORMATS)}")
    # Other model types keep their own template; the original prompt exists for ours.
    template_type = PROMPT_FORMATS[config.prompt_format] if config.model_type == NATIVE_MODEL_TYPE else None
    dtype_name, attn_impl = resolve_precision(config.torch_dtype, config.attn_impl)
    logger.info("loading %s (%s, %s, backend %s)", config.model_path, dtype_name, attn_impl, config.backend)
    dtype = getattr(torch, dtype_name)
    if config.dynamic_hd is not None:
        # Our loader reads the crop count from DYNAMIC_HD and logs it: set it first, so that the log names the crops
        # this evaluation uses, not the checkpoint's own setting.
        os.environ["DYNAMIC_HD"] = str(config.dynamic_hd)
    if config.backend == "vllm":
        engine = _vllm_engine(config, dtype, template_type)
    elif config.backend == "transformers":
        from swift.infer_engine import TransformersEngine

        engine = TransformersEngine(
            config.model_path,
            model_type=config.model_type,
            torch_dtype=dtype,
            attn_impl=attn_impl,
            adapters=list(config.adapters) or None,
            max_batch_size=config.batch_size,
            device_map=config.device_map,
            template_type=template_type,
        )
    else:
        raise ValueError(f"--infer_backend {config.backend!r}: choose transformers or vllm")
    if config.dynamic_hd is not None:
        engine.template.processor.image_processor.dynamic_hd = config.dynamic_hd
    if config.prompt_format == "original":
        engine.generation_config.eos_token_id = engine.template.tokenizer.eos_token_id
    if config.adapters and config.backend == "transformers":
        activate_all_adapters(engine.model)
    return engine


def _vllm_engine(config: EngineConfig, dtype, template_type: str | None):
    """ms-swift's VllmEngine; for our model type the template hands vLLM our adapter, checked once built."""
    try:
        from swift.infer_engine import VllmEngine
    except ImportError as error:
        raise InputError(
            f"--infer_backend vllm: this Python ({sys.executable}) has no vLLM ({error}). Run evaluate.py with the "
            "vLLM environment's Python (`make venv-vllm`, then .venv-vllm/bin/python), or INFER_BACKEND=vllm "
            "./evaluate.sh"
        ) from None
    native = config.model_type == NATIVE_MODEL_TYPE
    if native and config.adapters:
        raise InputError(
            "--infer_backend vllm with --adapters: vLLM holds phi4_mm_native with its vision LoRA merged and has no "
            "slot for another adapter; merge the adapter into a checkpoint first, or use the transformers engine"
        )
    engine = VllmEngine(
        config.model_path,
        model_type=config.model_type,
        template_type=template_type,
        torch_dtype=dtype,
        adapters=list(config.adapters) or None,
        max_num_seqs=config.batch_size,
        **config.vllm_kwargs,
    )
    if native:
        from utils.vllm_env import check_engine

        check_engine(engine.engine.model_config)
    return engine


def _requests(items: Sequence[EvalItem]) -> list:
    """ms-swift requests for `items`: one `<image>` per image before the question, as the templates expect."""
    from swift.infer_engine import InferRequest

    return [
        InferRequest(
            messages=[{"role": "user", "content": "<image>" * len(item.image_paths) + item.annotation["question"]}],
            images=list(item.image_paths),
        )
        for item in items
    ]


def sample(engine, items: Sequence[EvalItem], max_new_tokens: int, num_samples: int, temperature: float, seed: int):
    """`num_samples` completions per item at `temperature` (what GRPO's rollouts draw), as texts, in item order."""
    from swift.infer_engine import RequestConfig

    requests = _requests(items)
    if not requests:
        return []
    config = RequestConfig(max_tokens=max_new_tokens, temperature=temperature, n=num_samples, seed=seed)
    responses = engine.infer(requests, config, use_tqdm=False)
    return [[choice.message.content or "" for choice in response.choices] for response in responses]


def activate_all_adapters(model) -> list[str]:
    """Make every LoRA adapter of `model` active at once and return their names.

    PEFT activates only the adapter it loads last: `--adapters` on top of our loader's `vision` adapter would
    silently switch the model's own vision LoRA off."""
    from peft.tuners.lora import LoraLayer

    names = sorted({name for module in model.modules() if isinstance(module, LoraLayer) for name in module.lora_A})
    if names and hasattr(model, "base_model") and hasattr(model.base_model, "set_adapter"):
        model.base_model.set_adapter(names)
        logger.info("active adapters: %s", ", ".join(names))
    return names


def generate(
    engine,
    items: Sequence[EvalItem],
    max_new_tokens: int = 256,
    logprobs: bool = False,
    top_k: int = 0,
    keep_special_tokens: bool = False,
) -> list[dict]:
    """Greedy generations for `items`, in order: `generated_text`, and with `logprobs` the generated token ids,
    their text and bytes, log-probabilities, probabilities and the `top_k` alternatives of each step.
    `keep_special_tokens` decodes the response with its special tokens, stripped (the original `evaluate.py`).

    With the transformers engine, log-probs come from one scoring forward pass over prompt + generated ids per
    batch (`score_tokens`) rather than from the engine's per-step log-prob formatting, which costs Python work per
    token and per alternative; the two agree to float precision (tested). vLLM returns its own log-probs.
    """
    from swift.infer_engine import RequestConfig

    requests = _requests(items)
    rescore = logprobs and hasattr(engine, "model")  # TransformersEngine; VllmEngine has no in-process model
    engine_logprobs = logprobs and not rescore
    request_config = RequestConfig(
        max_tokens=max_new_tokens,
        temperature=0,
        logprobs=engine_logprobs,
        top_logprobs=top_k if engine_logprobs and top_k > 0 else None,
        return_details=logprobs or keep_special_tokens,
    )
    responses = engine.infer(requests, request_config, use_tqdm=False) if requests else []
    tokenizer = engine.template.tokenizer
    if keep_special_tokens:
        texts = [
            tokenizer.decode(
                response.choices[0].token_ids or [], skip_special_tokens=False, clean_up_tokenization_spaces=False
            ).strip()
            for response in responses
        ]
    else:
        texts = [response.choices[0].message.content or "" for response in responses]
    generations = [{"generated_text": text} for text in texts]
    if rescore and requests:
        token_ids = [list(response.choices[0].token_ids or []) for response in responses]
        for generation, ids, scored in zip(generations, token_ids, score_tokens(engine, requests, token_ids, top_k)):
            generation.update(_token_details(tokenizer, ids, *scored))
    elif engine_logprobs:
        for generation, response in zip(generations, responses):
            choice = response.choices[0]
            content = (choice.logprobs or {}).get("content") or []
            ids = list(choice.token_ids or [])[: len(content)]
            if len(ids) != len(content):
                raise RuntimeError(f"the engine returned {len(content)} log-probs for {len(ids)} token ids")
            alternatives = [
                [(_alternative_text(alt), float(alt["logprob"])) for alt in entry.get("top_logprobs") or []]
                for entry in content
            ]
            logps = [float(entry["logprob"]) for entry in content]
            generation.update(_token_details(tokenizer, ids, logps, alternatives if top_k > 0 else None))
    return generations


def score_tokens(engine, requests, token_ids: list[list[int]], top_k: int = 0):
    """Per request: (log-probs of `token_ids` given the prompt, top-k alternatives as (text, log-prob) pairs or
    None), from one forward pass of the engine's model over prompt + tokens (temperature 1, as greedy decoding)."""
    import inspect

    import torch
    from swift.utils import to_device

    template, model = engine.template, engine.model
    template.set_mode("transformers")
    encoded = []
    for request, ids in zip(requests, token_ids):
        row = template.encode(request)
        row["input_ids"] = list(row["input_ids"]) + list(ids)
        encoded.append(row)
    batch = to_device(template.data_collator(encoded), model.device)
    accepted = inspect.signature(model.forward).parameters
    mask = batch["attention_mask"]
    total = mask.shape[1]
    # Each row ends at its last attended position (left or right padding); its tokens are the last len(ids) there.
    ends = [int(row.nonzero().max()) + 1 for row in mask]
    keep = max(1, total - min(end - len(ids) - 1 for end, ids in zip(ends, token_ids)))
    with torch.no_grad():
        logits = model(**{k: v for k, v in batch.items() if k in accepted}, logits_to_keep=keep).logits
    results = []
    for row, (end, ids) in enumerate(zip(ends, token_ids)):
        if not ids:
            results.append(([], [] if top_k > 0 else None))
            continue
        first = keep - (total - (end - len(ids) - 1))
        step_logps = torch.log_softmax(logits[row, first : first + len(ids)].float(), dim=-1)
        chosen = step_logps.gather(1, torch.tensor(ids, device=step_logps.device)[:, None]).squeeze(1).tolist()
        alternatives = None
        if top_k > 0:
            values, indices = step_logps.topk(top_k, dim=-1)
            texts = token_text(token_bytes(template.tokenizer, [i for step in indices.tolist() for i in step]))
            alternatives = [
                list(zip(texts[step * top_k : (step + 1) * top_k], vals)) for step, vals in enumerate(values.tolist())
            ]
        results.append((chosen, alternatives))
    return results


def _token_details(tokenizer, ids: list[int], logps: list[float], alternatives) -> dict:
    pieces = token_bytes(tokenizer, ids)
    details = {
        "generated_token_ids": ids,
        "generated_tokens": token_text(pieces),
        "generated_token_bytes": [piece.hex() for piece in pieces],
        "token_logprobs": logps,
        "token_probabilities": [math.exp(lp) for lp in logps],
    }
    if alternatives is not None:
        details["top_alternatives"] = [
            [{"token": text, "logprob": float(lp)} for text, lp in step] for step in alternatives
        ]
    return details


def _alternative_text(alternative: dict) -> str:
    raw = alternative.get("bytes")
    return bytes(raw).decode("utf-8", errors="backslashreplace") if raw is not None else str(alternative["token"])
