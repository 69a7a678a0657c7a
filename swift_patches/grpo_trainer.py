"""Our GRPO trainer: ms-swift 4.6's `GRPOTrainer`, subclassed and installed through `TrainerFactory.TRAINER_MAPPING`.

What it adds, each through one overridden hook of the rollout pipeline (`_rollout_samples -> _score_completions ->
_prepare_batch_inputs -> _postprocess_batch -> _log_rollout`):

- completions.jsonl token columns (`_postprocess_batch`): per sample, the sampled token ids, each token's exact
  bytes (hex) and readable text, and the rollout log-probs of those tokens, one row per sample, aligned with its
  prompt and completion. Log-probs are the engine's own when the rollout engine returned them (vLLM), otherwise
  the policy's log-probs of the sampled tokens at rollout time (`old_per_token_logps`: same weights, temperature
  applied, no gradient, computed on the collated batch).
- reward sub-scores (`_compute_rewards_per_func` collects, `_score_completions` logs): every reward with a
  `last_metrics` attribute (our KG rewards) reports the mean of each sub-score as `rewards/<Class>/<metric>`, over
  exactly the samples that ms-swift's `rewards/<Class>/mean` covers: under dynamic sampling, the groups that were
  resampled away are left out of both.
- the dynamic-sampling threshold (`compute_std`): `DYNAMIC_SAMPLE_MIN_STD` (default 0, ms-swift's rule "std > 0");
  with `--dynamic_sample true`, groups whose reward std is at or below it are resampled. The original code
  hard-coded 0.06; `train.sh` sets that value explicitly as part of the paper's recipe.
- `FREEZE_NON_VISION_PARAMS` (`__init__`): see `swift_patches/freezing.py`.
- resume (`_load_from_checkpoint`): a checkpoint in our native layout (base weights + `vision-lora/`) is loaded in
  full and strictly by `load_native_layout`; transformers' own loader would keep the SFT vision LoRA (and every
  LoRA-wrapped base weight) with only a warning. Optimizer, scheduler, RNG and step are restored by transformers as
  usual. Under DeepSpeed, transformers resumes from DeepSpeed's own `global_step*/` states instead.
- where a step's time goes (`_generate_completions`, `_compute_rewards_per_func`, `log`): logging.jsonl gets
  `time/generation_s` (rollout generation), `time/rewards_s` (every reward), `time/reward/<name>_s` (each reward
  that times itself: the KG rewards), as means per optimizer step since the last log, beside ms-swift's
  `step_time`; on a GPU, `memory/peak_gib` (the process's peak allocated memory so far).
- run settings that ms-swift's own files do not hold (`_save`): `chex_run.json` in every checkpoint records the
  image crop count the run trained with (ms-swift copies the source model's `preprocessor_config.json`).

The hooks are private ms-swift methods; `check_swift_hooks()` runs at install time and fails loudly if a future
ms-swift renames them, and a test pins their signatures.
"""

from __future__ import annotations

import inspect
import json
import math
import time
from collections import deque
from pathlib import Path

import torch
from accelerate.utils import gather_object
from swift.rlhf_trainers.grpo_trainer import GRPOTrainer
from swift.trainers import TrainerFactory

from swift_patches.freezing import FreezeConfig, freeze_non_vision
from swift_patches.phi4mm import VISION_LORA_DIR, inactive_vision_lora, load_native_layout
from utils.checkpoints.phi4mm import NATIVE_MODEL_TYPE
from utils.env import env_float
from utils.io import atomic_write_json
from utils.log import get_logger
from utils.tokens import token_bytes, token_text
from utils.training_logs import set_aside_after

logger = get_logger("grpo_trainer")

# The GRPOTrainer methods this subclass overrides or calls, with their parameters (self excluded).
SWIFT_HOOKS = {
    "_postprocess_batch": ("samples", "batch_encoded_inputs"),
    "_compute_rewards_per_func": ("samples",),
    "_score_completions": ("samples",),
    "compute_std": ("samples", "rewards_per_func"),
    "split_by_mini_batches": ("samples",),
    "_gather_and_flatten": ("local_list", "dtype", "device", "flatten_level"),
    "_generate_completions": ("samples",),
    "log": ("logs", "start_time"),
    "_prepare_vllm_engine": (),
}
RUN_SETTINGS_FILE = "chex_run.json"
TOKEN_COLUMNS = ("completion_token_ids", "completion_tokens", "completion_token_bytes", "token_logps")
# Dynamic sampling's record: completions.jsonl's `sampling_round` column (0: the step's first rollout, k: the k-th
# resample) and, for the groups it dropped (reward spread too small), one row per completion in this file.
DYNAMIC_SAMPLING_LOG = "dynamic_sampling.jsonl"


def check_swift_hooks(trainer_cls: type = GRPOTrainer) -> None:
    """Raise RuntimeError when ms-swift's GRPOTrainer no longer has a hook we rely on, with the expected signature."""
    for name, params in SWIFT_HOOKS.items():
        method = getattr(trainer_cls, name, None)
        found = tuple(inspect.signature(method).parameters)[1:] if method else None
        if found != params:
            raise RuntimeError(
                f"ms-swift's GRPOTrainer.{name} is {found}, expected {params}: this ms-swift version is not the one "
                "CheX-Phi4MM's trainer extensions were written for (ms-swift 4.6.0, see requirements.txt)"
            )


def check_token_log_layout(log_completions: bool, padding_free: bool, sequence_parallel_size: int) -> None:
    """Refuse, at start-up, the batch layouts in which per-sample token rows cannot be cut from the batch."""
    if not log_completions:
        return
    if padding_free:
        raise ValueError(
            "--log_completions with --padding_free true: CheX-Phi4MM's per-token log-prob columns do not support "
            "padding-free batches (rows would be misaligned). Use --padding_free false or --log_completions false."
        )
    if sequence_parallel_size > 1:
        raise ValueError(
            f"--log_completions with --sequence_parallel_size {sequence_parallel_size}: CheX-Phi4MM's per-token "
            "log-prob columns do not support sequence parallelism. Use --sequence_parallel_size 1 or "
            "--log_completions false."
        )


def zero_small_std(std: torch.Tensor, min_std: float) -> torch.Tensor:
    """Group reward stds with every value at or below `min_std` set to 0, so dynamic sampling resamples them.

    >>> zero_small_std(torch.tensor([0.0, 0.05, 0.5]), 0.06).tolist()
    [0.0, 0.0, 0.5]
    """
    return std if min_std <= 0 else std.masked_fill(std <= min_std, 0.0)


class CheXGRPOTrainer(GRPOTrainer):
    """ms-swift's GRPOTrainer plus token log-probs, reward sub-scores, freezing and a dynamic-sampling threshold."""

    def __init__(self, model=None, ref_model=None, reward_model=None, reward_funcs=None, *args, **kwargs):
        template = kwargs["template"]
        check_token_log_layout(kwargs["args"].log_completions, template.padding_free, template.sequence_parallel_size)
        if model is not None and inactive_vision_lora(model):
            raise ValueError(
                "the model's vision LoRA (vision-lora/) is switched off: a PEFT tuner (--tuner_type lora) wrapped the "
                "model and activated only its own adapter, so the policy would train and generate without the SFT'd "
                "vision LoRA. Use --tuner_type full with FREEZE_NON_VISION_PARAMS=1 (the recipe), or "
                "PHI4MM_VISION_LORA=0 to train a new LoRA on the bare base model."
            )
        super().__init__(model, ref_model, reward_model, reward_funcs, *args, **kwargs)
        self.dynamic_sample_min_std = env_float("DYNAMIC_SAMPLE_MIN_STD", 0.0)
        self._sub_scores: dict[str, dict[str, float]] = {}  # metric -> request id -> value, until logged
        self._scored_rounds: list[list[dict]] = []  # this step's scored rollouts, one list per sampling round
        self._sampling_round: dict[str, int] = {}  # request id -> round, for the kept samples of this step
        self._phase_seconds: dict[str, float] = {}  # phase -> seconds since the last log
        self._phase_since_step = 0
        freeze = FreezeConfig.from_env()
        self.freeze_report = freeze_non_vision(self.model, freeze) if freeze.enabled else None

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        self._set_aside_abandoned_logs(resume_from_checkpoint)
        model = self.model if model is None else model
        if not (Path(resume_from_checkpoint) / VISION_LORA_DIR).is_dir():
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        loaded = load_native_layout(getattr(model, "module", model), resume_from_checkpoint)  # DDP wraps it
        logger.info("resumed %d tensors (base weights and vision LoRA) from %s", loaded, resume_from_checkpoint)

    def _set_aside_abandoned_logs(self, checkpoint: str) -> None:
        """What the interrupted run logged after this checkpoint goes to `*.abandoned.jsonl` (rank 0 only)."""
        state = Path(checkpoint) / "trainer_state.json"
        if not self.is_world_process_zero() or not state.is_file():
            return
        step = int(json.loads(state.read_text())["global_step"])
        moved = set_aside_after(self.args.output_dir, step)
        if moved:
            logger.info("resuming at step %d: set aside what the interrupted run logged after it: %s", step, moved)

    def _save(self, output_dir=None, state_dict=None) -> None:
        super()._save(output_dir, state_dict)
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        image_processor = self.template.processor.image_processor
        atomic_write_json(Path(output_dir) / RUN_SETTINGS_FILE, {"dynamic_hd": image_processor.dynamic_hd})

    def compute_std(self, samples, rewards_per_func: torch.Tensor) -> torch.Tensor:
        return zero_small_std(super().compute_std(samples, rewards_per_func), self.dynamic_sample_min_std)

    def _add_seconds(self, phase: str, seconds: float) -> None:
        if self.model.training:
            self._phase_seconds[phase] = self._phase_seconds.get(phase, 0.0) + seconds

    def _prepare_vllm_engine(self):
        engine = super()._prepare_vllm_engine()
        if self.model.model_meta.model_type == NATIVE_MODEL_TYPE:
            from utils.vllm_env import check_engine

            check_engine(engine.engine.model_config)  # our class, not vLLM's text-only fallback
        return engine

    def _generate_completions(self, samples):
        started = time.perf_counter()
        samples = super()._generate_completions(samples)
        self._add_seconds("generation", time.perf_counter() - started)
        return samples

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.model.training and "loss" in logs:  # a training step's log, not the final summary
            steps = max(1, self.state.global_step - self._phase_since_step)
            logs.update({f"time/{phase}_s": seconds / steps for phase, seconds in sorted(self._phase_seconds.items())})
            self._phase_seconds, self._phase_since_step = {}, self.state.global_step
            if torch.cuda.is_available():
                logs["memory/peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        if "train_runtime" in logs and self.log_completions:
            # The run's closing summary: ms-swift would append the last step's completions to completions.jsonl a
            # second time.
            self.log_completions = False
            try:
                return super().log(logs, start_time)
            finally:
                self.log_completions = True
        super().log(logs, start_time)

    def _compute_rewards_per_func(self, samples) -> torch.Tensor:
        started = time.perf_counter()
        rewards_per_func = super()._compute_rewards_per_func(samples)
        self._add_seconds("rewards", time.perf_counter() - started)
        for name, func in zip(self.reward_func_names, self.reward_funcs):
            if getattr(func, "last_seconds", None) is not None:
                self._add_seconds(f"reward/{name}", func.last_seconds)
        request_ids = gather_object([sample.request_id for sample in samples])
        if self.log_completions and self.dynamic_sample and self.model.training:
            self._record_round(samples, request_ids, rewards_per_func)
        for name, func in zip(self.reward_func_names, self.reward_funcs):
            for metric, values in getattr(func, "last_metrics", {}).items():
                by_request = self._sub_scores.setdefault(f"rewards/{name}/{metric}", {})
                by_request.update(zip(request_ids, gather_object(list(values)), strict=True))
        return rewards_per_func

    def _record_round(self, samples, request_ids: list[str], rewards_per_func: torch.Tensor) -> None:
        completions = gather_object([_completion_text(self.processing_class, sample) for sample in samples])
        prompts = gather_object([_last_user_text(sample) for sample in samples])
        rows = rewards_per_func.tolist()
        self._scored_rounds.append(
            [
                {
                    "request_id": i,
                    "prompt": prompt,
                    "completion": completion,
                    "rewards": dict(zip(self.reward_func_names, row)),
                }
                for i, prompt, completion, row in zip(request_ids, prompts, completions, rows, strict=True)
            ]
        )

    def _log_dynamic_sampling(self, kept: list[str]) -> None:
        """Which round each kept sample came from, and (rank 0) the dropped groups' completions to the side file."""
        kept_ids = set(kept)
        self._sampling_round = {}
        dropped = []
        step = self.state.global_step + 1
        for number, scored in enumerate(self._scored_rounds):
            for row in scored:
                if row["request_id"] in kept_ids:
                    self._sampling_round.setdefault(row["request_id"], number)
                else:
                    dropped.append({"step": step, "round": number, **row})
        self._scored_rounds = []
        if dropped and self.is_world_process_zero():
            with open(Path(self.args.output_dir) / DYNAMIC_SAMPLING_LOG, "a", encoding="utf-8") as handle:
                handle.write("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in dropped))

    def _score_completions(self, samples):
        samples = super()._score_completions(samples)  # dynamic sampling may have replaced groups
        kept = gather_object([sample.request_id for sample in samples])
        if self._scored_rounds:
            self._log_dynamic_sampling(kept)
        mode = "train" if self.model.training else "eval"
        for key, by_request in sorted(self._sub_scores.items()):
            values = [by_request[i] for i in kept if i in by_request and not math.isnan(by_request[i])]
            if values:
                self._metrics[mode][key].append(sum(values) / len(values))
        self._sub_scores.clear()
        return samples

    def _postprocess_batch(self, samples, batch_encoded_inputs) -> None:
        super()._postprocess_batch(samples, batch_encoded_inputs)
        if self.log_completions:
            self._log_completion_tokens(samples, batch_encoded_inputs)

    def _log_completion_tokens(self, samples, batch_encoded_inputs) -> None:
        """Append one token row per sample, in the order `_log_rollout` logs prompts and completions."""
        tokenizer = self.template.tokenizer
        columns = {name: [] for name in TOKEN_COLUMNS}
        chunks = self.split_by_mini_batches(samples)
        for chunk, encoded in zip(chunks, batch_encoded_inputs, strict=True):
            batch = encoded["grpo_batch"]
            logps = batch.rollout_per_token_logps
            if logps is None:
                logps = batch.old_per_token_logps
            input_ids = encoded["model_inputs"]["input_ids"][:, -logps.shape[1] :]
            mask = batch.completion_mask.bool()
            if len(chunk) != input_ids.shape[0]:
                raise RuntimeError(f"token log: {len(chunk)} samples but a batch of {input_ids.shape[0]} rows")
            for ids_row, logp_row, mask_row in zip(input_ids, logps, mask):
                ids = ids_row[mask_row].tolist()
                pieces = token_bytes(tokenizer, ids)
                columns["completion_token_ids"].append(ids)
                columns["completion_tokens"].append(token_text(pieces))
                columns["completion_token_bytes"].append([piece.hex() for piece in pieces])
                columns["token_logps"].append([round(x, 6) for x in logp_row[mask_row].float().tolist()])
        if self.dynamic_sample and self.model.training:
            columns["sampling_round"] = [self._sampling_round.get(sample.request_id, 0) for sample in samples]
        for name, values in columns.items():
            if name not in self._logs:
                self._logs[name] = deque(maxlen=self.args.generation_batch_size)
            self._logs[name].extend(self._gather_and_flatten(values, flatten_level=0))


def _completion_text(tokenizer, sample) -> str:
    content = sample.messages[-1]["content"]
    if isinstance(content, str):
        return content
    return tokenizer.decode(content["token_ids"] if isinstance(content, dict) else content)


def _last_user_text(sample) -> str:
    for message in reversed(sample.messages[:-1]):
        if message.get("role") == "user":
            content = message["content"]
            return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    return ""


def register() -> None:
    """Point ms-swift's `grpo` trainer at CheXGRPOTrainer (after checking the hooks it relies on)."""
    check_swift_hooks()
    TrainerFactory.TRAINER_MAPPING["grpo"] = f"{CheXGRPOTrainer.__module__}.{CheXGRPOTrainer.__qualname__}"
