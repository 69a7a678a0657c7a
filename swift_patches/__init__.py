"""Our extensions of ms-swift 4.6, installed through its own extension points (no vendored ms-swift).

`install()` is what `plugin.py` calls:
- `phi4mm`: the native Phi-4-multimodal model type and template `phi4_mm_native` (`register_model`,
  `register_template`);
- `rewards`: the `external_*` rewards (`swift.rewards.orms`);
- `grpo_trainer`: our GRPOTrainer subclass (`TrainerFactory.TRAINER_MAPPING['grpo']`): per-token log-probs in
  completions.jsonl, reward sub-score metrics, `FREEZE_NON_VISION_PARAMS`, `DYNAMIC_SAMPLE_MIN_STD`;
- `rollout_cpu`: `swift rollout` (vLLM server mode) on a machine without an accelerator, one engine.
The vLLM adapter (`vllm_phi4mm`) is not installed here: vLLM engines load it by name (`engine_overrides()`).
"""

from __future__ import annotations


def install() -> None:
    """Register everything this package adds to ms-swift (idempotent)."""
    from swift_patches import grpo_trainer, phi4mm, rewards, rollout_cpu

    phi4mm.register()
    rewards.register()
    grpo_trainer.register()
    rollout_cpu.install()
