"""Batched, multi-GPU, resumable evaluation of a Phi-4-MM checkpoint on MIMIC-VQA-CoT annotations.

    python evaluate.py --model_path checkpoints/<ckpt>                        # every split under --data_root
    python evaluate.py --model_path <ckpt> --annotation_file a.json --img_root images/
    torchrun --nproc_per_node 8 evaluate.py --model_path <ckpt>             # one shard per rank, rank 0 merges

See `utils/evaluation/runner.py` for what is written; `python evaluate.py --help` for every option.
"""

import sys

from utils.evaluation.runner import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
