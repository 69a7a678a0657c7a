"""`swift rollout` (the vLLM server of `VLLM_MODE=server`) on a machine without an accelerator.

ms-swift 4.6's `RolloutArguments._check_device_count` counts CUDA/NPU/MUSA devices only, so the server refuses to
start on a CPU box where vLLM's CPU build could run its engine. This lets one engine (data and tensor parallel size
1) pass. The server then serves rollouts; GRPO cannot train against it on a CPU, because ms-swift's weight sync to
the server is NCCL (GPU only): train.sh refuses that combination.

`install()` does nothing where torch sees CUDA or vLLM is not installed. `tests/test_vllm.py` fails if ms-swift
renames the check.
"""

from __future__ import annotations

import importlib.util

import torch

PATCHED_METHOD = "_check_device_count"


def _check_device_count(self) -> None:
    if self.vllm_data_parallel_size * self.vllm_tensor_parallel_size != 1:
        raise ValueError(
            "swift rollout on a CPU machine runs one engine: vllm_data_parallel_size and vllm_tensor_parallel_size "
            f"must be 1 (got {self.vllm_data_parallel_size} and {self.vllm_tensor_parallel_size})"
        )


def install() -> None:
    """Let one CPU engine pass the rollout server's device check (idempotent; a no-op with CUDA or without vLLM)."""
    if torch.cuda.is_available() or importlib.util.find_spec("vllm") is None:
        return
    from swift.arguments import RolloutArguments

    if not hasattr(RolloutArguments, PATCHED_METHOD):
        raise RuntimeError(f"RolloutArguments.{PATCHED_METHOD} is gone: this is not ms-swift 4.6's rollout server")
    setattr(RolloutArguments, PATCHED_METHOD, _check_device_count)
