"""The evaluation of `evaluate.py` with token log-probabilities: per sample the generated token ids, their text and
bytes, probabilities, log-probs and top-k alternatives, plus a browser report (`report.html`) for error analysis.

    python evaluate_token_prob.py --model_path checkpoints/<ckpt> [--top_k 5] [--annotation_file … --img_root …]
"""

import sys

from utils.evaluation.runner import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], token_probs=True))
