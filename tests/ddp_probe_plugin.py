"""A test-only ms-swift plugin (loaded after plugin.py).

- Before each training step, each rank writes a digest of its trainable weights to
  `<output_dir>/probe/rank<R>-step<N>.json` (step N's call sees the weights after N-1 updates), so a test can compare
  the ranks.
- `test_even_tokens`: the learning canary's dense reward (share of even token ids), so that a random tiny model gets
  non-zero advantages and the weights really move (the accuracy and KG rewards are 0 on its gibberish).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from swift.rewards import ORM, orms
from swift.trainers import TrainerFactory


class EvenTokens(ORM):
    def __call__(self, completions, response_token_ids=None, **kwargs):
        return [sum(1 for t in ids if t % 2 == 0) / max(1, len(ids)) for ids in response_token_ids]


orms["test_even_tokens"] = EvenTokens

trainer_cls = TrainerFactory.TRAINER_MAPPING["grpo"]
module_name, class_name = trainer_cls.rsplit(".", 1)
cls = getattr(__import__(module_name, fromlist=[class_name]), class_name)
original_training_step = cls.training_step


def training_step(self, *args, **kwargs):
    digest = hashlib.sha256()
    for name, parameter in sorted(self.model.named_parameters()):
        if parameter.requires_grad:
            digest.update(name.encode())
            digest.update(parameter.detach().cpu().float().numpy().tobytes())
    rank = int(os.environ.get("RANK", "0"))
    folder = Path(self.args.output_dir) / "probe"
    folder.mkdir(parents=True, exist_ok=True)
    step = self.state.global_step + 1  # the step this call is about to take
    (folder / f"rank{rank}-step{step}.json").write_text(json.dumps({"digest": digest.hexdigest()}))
    return original_training_step(self, *args, **kwargs)


cls.training_step = training_step
