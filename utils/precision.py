"""The one precision policy of training (train.sh) and evaluation: bfloat16 + flash-attention on CUDA when flash-attn
imports, bfloat16 + sdpa on CUDA without it, float32 + sdpa on CPU. Explicit choices pass through.

    python -m utils.precision auto auto        # prints "<dtype> <attention> <cuda|cpu>", what train.sh reads
    python -m utils.precision auto auto gpu    # a GPU node's plan, from a login node without one (TARGET=gpu)
"""

from __future__ import annotations

import sys


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_precision(torch_dtype: str, attn_impl: str, target: str = "auto") -> tuple[str, str]:
    """`auto` means bfloat16 + flash-attention on CUDA when flash-attn imports, bfloat16 + sdpa on CUDA without it,
    float32 + sdpa on CPU. `target` is the machine planned for: `auto` is this one; `gpu` is a GPU node with the GPU
    extras installed (requirements-gpu.txt, flash-attn among them), `cpu` a machine without CUDA.

    >>> resolve_precision("float32", "eager")
    ('float32', 'eager')
    >>> resolve_precision("auto", "auto", target="gpu")
    ('bfloat16', 'flash_attention_2')
    """
    cuda = cuda_available() if target == "auto" else target == "gpu"
    if torch_dtype == "auto":
        torch_dtype = "bfloat16" if cuda else "float32"
    if attn_impl == "auto":
        if target == "auto":
            try:
                import flash_attn  # noqa: F401

                has_flash = True
            except ImportError:
                has_flash = False
        else:
            has_flash = target == "gpu"
        attn_impl = "flash_attention_2" if cuda and has_flash else "sdpa"
    return torch_dtype, attn_impl


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (2, 3):
        print("usage: python -m utils.precision TORCH_DTYPE ATTN_IMPL [TARGET]   (each may be auto)", file=sys.stderr)
        return 2
    target = argv[2] if len(argv) == 3 else "auto"
    here = "cuda" if cuda_available() else "cpu"
    device = here if target == "auto" else {"gpu": "cuda", "cpu": "cpu"}[target]
    print(*resolve_precision(argv[0], argv[1], target), device, here)
    return 0


if __name__ == "__main__":
    sys.exit(main())
