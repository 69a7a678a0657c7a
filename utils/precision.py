"""The one precision policy of training (train.sh) and evaluation: bfloat16 + flash-attention on CUDA when flash-attn
imports, bfloat16 + sdpa on CUDA without it, float32 + sdpa on CPU. Explicit choices pass through.

    python -m utils.precision auto auto        # prints "<dtype> <attention> <cuda|cpu>", what train.sh reads
"""

from __future__ import annotations

import sys


def resolve_precision(torch_dtype: str, attn_impl: str) -> tuple[str, str]:
    """`auto` means bfloat16 + flash-attention on CUDA when flash-attn imports, bfloat16 + sdpa on CUDA without it,
    float32 + sdpa on CPU.

    >>> resolve_precision("float32", "eager")
    ('float32', 'eager')
    """
    import torch

    cuda = torch.cuda.is_available()
    if torch_dtype == "auto":
        torch_dtype = "bfloat16" if cuda else "float32"
    if attn_impl == "auto":
        try:
            import flash_attn  # noqa: F401

            has_flash = True
        except ImportError:
            has_flash = False
        attn_impl = "flash_attention_2" if cuda and has_flash else "sdpa"
    return torch_dtype, attn_impl


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m utils.precision TORCH_DTYPE ATTN_IMPL   (each may be auto)", file=sys.stderr)
        return 2
    import torch

    print(*resolve_precision(*argv), "cuda" if torch.cuda.is_available() else "cpu")
    return 0


if __name__ == "__main__":
    sys.exit(main())
