"""The one validation of the launchers' knobs and the CLIs' options: type and range, checked before anything runs.

Each knob is declared once (`KNOBS`: name -> `Knob`); the launchers check their environment with
`python -m utils.knobs train|train_loop|evaluate` before they print a plan or write a file, and the Python CLIs use
the same rules as argparse types (`argparse_type`). A bad value gets one line naming the knob, its value and what
is allowed, and exit code 2.

>>> KNOBS["NUM_GENERATIONS"].problem("0")
'NUM_GENERATIONS=0: must be an integer >= 2 (completions per prompt; GRPO compares them)'
>>> KNOBS["LR"].problem("abc"), KNOBS["LR"].problem("4e-6")
('LR=abc: must be a number > 0 (learning rate)', None)
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Knob:
    """One knob: how to read it, which values are allowed (said in words for the message)."""

    name: str
    kind: str  # "int", "float", "choice", "list"
    what: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    above: bool = False  # the minimum itself is excluded
    item: Knob | None = None  # for lists: the rule of each item
    extra: tuple[str, ...] = ()  # other values allowed besides the range ("-1" for MAX_STEPS)

    def allowed(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "list":
            return "a space-separated list, each " + self.item.allowed().removeprefix("must be ")
        noun = "an integer" if self.kind == "int" else "a number"
        bounds = []
        if self.minimum is not None:
            bounds.append(f"{'>' if self.above else '>='} {self.minimum:g}")
        if self.maximum is not None:
            bounds.append(f"<= {self.maximum:g}")
        text = f"{noun} {' and '.join(bounds)}".strip()
        return text + "".join(f", or {value}" for value in self.extra)

    def problem(self, value: str) -> str | None:
        """None when `value` is allowed, else the one-line message."""
        if not self._ok(value):
            return f"{self.name}={value}: must be {self.allowed()} ({self.what})"
        return None

    def _ok(self, value: str) -> bool:
        value = value.strip()
        if value in self.extra:
            return True
        if self.kind == "choice":
            return value in self.choices
        if self.kind == "list":
            items = value.split()
            return bool(items) and all(self.item._ok(item) for item in items)
        try:
            number = int(value) if self.kind == "int" else float(value)
        except ValueError:
            return False
        if isinstance(number, float) and not math.isfinite(number):
            return False
        if self.minimum is not None and (number <= self.minimum if self.above else number < self.minimum):
            return False
        return self.maximum is None or number <= self.maximum


def _int(name, what, minimum=None, maximum=None, extra=()):
    return Knob(name, "int", what, minimum, maximum, extra=extra)


def _float(name, what, minimum=None, maximum=None, above=False):
    return Knob(name, "float", what, minimum, maximum, above=above)


def _choice(name, what, *choices):
    return Knob(name, "choice", what, choices=choices)


def _flag(name, what):
    return _choice(name, what, "0", "1")


_KNOB_LIST = [
    _float("LR", "learning rate", 0, above=True),
    _int("NUM_GENERATIONS", "completions per prompt; GRPO compares them", 2),
    _float("BETA", "KL coefficient", 0),
    _float("EPOCHS", "training epochs", 0, above=True),
    _int("MAX_STEPS", "training steps; -1: as many as the epochs take", 1, extra=("-1",)),
    _int("PER_DEVICE_BATCH", "completions per device and step", 1),
    _int("GRAD_ACCUM", "gradient accumulation steps", 1),
    _int("MAX_COMPLETION_LENGTH", "new tokens per completion", 1),
    _float("TEMPERATURE", "sampling temperature", 0, above=True),
    _float("EPSILON", "PPO clip range", 0, above=True),
    _float("WARMUP_RATIO", "share of steps warming up", 0, 1),
    _choice("DYNAMIC_SAMPLE", "resample groups whose rewards do not differ", "true", "false"),
    _int("MAX_RESAMPLE_TIMES", "dynamic-sampling rounds", 0),
    _float("DYNAMIC_SAMPLE_MIN_STD", "reward spread below which a group counts as flat", 0),
    _int("SAVE_STEPS", "steps between checkpoints", 1),
    _int("SAVE_TOTAL_LIMIT", "checkpoints kept", 1),
    _int("LOGGING_STEPS", "steps between log rows", 1),
    _flag("FREEZE_NON_VISION_PARAMS", "1: train the vision LoRA only"),
    _flag("FREEZE_TRAIN_LM_HEAD", "1: also train lm_head"),
    _choice("TUNER_TYPE", "ms-swift tuner", "full", "lora", "dummy"),
    _int("MAX_LENGTH", "prompt + completion tokens", 1),
    _int("DYNAMIC_HD", "maximum image crops", 1),
    _flag("ALLOW_TRUNCATION", "1: train even if prompts exceed MAX_LENGTH"),
    _choice("TORCH_DTYPE", "precision", "auto", "bfloat16", "float16", "float32"),
    _choice("ATTN_IMPL", "attention", "auto", "eager", "sdpa", "flash_attention_2", "flash_attention_3"),
    _choice("USE_VLLM", "rollouts on vLLM (the vLLM environment, .venv-vllm)", "true", "false"),
    _choice("VLLM_MODE", "where vLLM runs: in each training process, or a rollout server", "colocate", "server"),
    _float("VLLM_GPU_MEMORY_UTILIZATION", "share of each GPU's memory vLLM takes", 0, 1, above=True),
    _int("VLLM_TENSOR_PARALLEL_SIZE", "GPUs per vLLM engine", 1),
    _choice("SLEEP_LEVEL", "vLLM sleep between rollouts (0: off, 1: weights offloaded, 2: dropped)", "0", "1", "2"),
    _int("MOVE_MODEL_BATCHES", "groups the weight sync sends the layers in (0: all at once)", 0),
    _int("VLLM_SERVER_PORT", "the rollout server's port", 1, 65535),
    _choice("TARGET", "the machine the plan is for (gpu: a GPU node, from a login node)", "auto", "cpu", "gpu"),
    _int("NPROC_PER_NODE", "processes per node", 1),
    _int("NNODES", "nodes", 1),
    _int("NODE_RANK", "this node's rank", 0),
    _int("MASTER_PORT", "rendezvous port", 1, 65535),
    _int("DATALOADER_WORKERS", "data-loader processes", 0),
    _int("DATASET_NUM_PROC", "dataset and pre-flight check processes", 1),
    _int("OMP_NUM_THREADS", "intra-op threads per process", 1),
    _int("SEED", "random seed", 0),
    _flag("RESUME", "1: continue from the last checkpoint"),
    _flag("SKIP_BAD_ROWS", "1: train on the rows that pass the pre-flight check"),
    _flag("DRY_RUN", "1: print the plan only"),
    # train_loop.sh: the sweep axes
    Knob(
        "SAMPLE_TYPES",
        "list",
        "sets to sweep",
        item=_choice("", "", "hard_uniform", "uniform", "hard_random", "random", "learnable"),
    ),
    Knob("DATASET_SIZES", "list", "set sizes to sweep", item=_int("", "", 1)),
    Knob("LEARNING_RATES", "list", "learning rates to sweep", item=_float("", "", 0, above=True)),
    Knob("BETAS", "list", "KL coefficients to sweep", item=_float("", "", 0)),
    # evaluate.sh / evaluate.py
    _int("BATCH_SIZE", "requests per generate call", 1),
    _int("MAX_NEW_TOKENS", "new tokens per answer", 1),
    _choice("INFER_BACKEND", "inference engine", "transformers", "vllm"),
    _choice("PROMPT_FORMAT", "evaluation prompt", "sft", "original"),
    _flag("RUN_TOKEN_PROB", "1: also export token probabilities"),
    _int("TOP_K", "alternatives kept per token", 0),
    _float("LOW_PROB", "report: outline tokens below this probability", 0, 1),
    _int("LIMIT", "items per split", 1),
    _int("NUM_SAMPLES", "sampled completions per item for the headroom measure (0: off)", 0),
]
KNOBS = {knob.name: knob for knob in _KNOB_LIST}
# The sweep's NUM_GENERATIONS is a list of values; each must satisfy the single knob's rule.
SWEEP_NUM_GENERATIONS = Knob(
    "NUM_GENERATIONS", "list", "completions per prompt to sweep", item=KNOBS["NUM_GENERATIONS"]
)

# A job's knobs: train.sh's own, and (all but the swept ones) train_loop.sh's, which passes them on to train.sh.
_JOB = tuple(name for name in KNOBS if name not in ("SAMPLE_TYPES", "DATASET_SIZES", "LEARNING_RATES", "BETAS"))
_JOB = _JOB[: _JOB.index("BATCH_SIZE")]  # the evaluation knobs come after
_EVALUATE = ("BATCH_SIZE", "MAX_NEW_TOKENS", "DYNAMIC_HD", "INFER_BACKEND", "PROMPT_FORMAT", "RUN_TOKEN_PROB", "TOP_K")
_EVALUATE += ("VLLM_GPU_MEMORY_UTILIZATION", "VLLM_TENSOR_PARALLEL_SIZE")
_EVALUATE += ("NUM_SAMPLES", "TEMPERATURE")
_EVALUATE += ("NPROC_PER_NODE", "NNODES", "NODE_RANK", "MASTER_PORT", "OMP_NUM_THREADS", "TARGET", "DRY_RUN")
_ROLLOUT_SERVER = ("DYNAMIC_HD", "MAX_LENGTH", "TORCH_DTYPE", "VLLM_GPU_MEMORY_UTILIZATION")
_ROLLOUT_SERVER += ("VLLM_TENSOR_PARALLEL_SIZE", "VLLM_SERVER_PORT", "DRY_RUN")
LAUNCHERS: dict[str, list[Knob]] = {
    "train": [KNOBS[k] for k in _JOB],
    "train_loop": [KNOBS[k] for k in _JOB if k not in ("LR", "NUM_GENERATIONS", "BETA")]
    + [KNOBS[k] for k in ("SAMPLE_TYPES", "DATASET_SIZES", "LEARNING_RATES", "BETAS")]
    + [SWEEP_NUM_GENERATIONS],
    "evaluate": [KNOBS[k] for k in _EVALUATE],
    "rollout_server": [KNOBS[k] for k in _ROLLOUT_SERVER],
}


# Knobs whose values are paths or free text: checked where they are used, but names a launcher reads all the same.
_JOB_PATHS = (
    "MODEL_PATH", "DATA_ROOT", "REWARD_FUNCS", "REWARD_WEIGHTS", "DEEPSPEED", "MASTER_ADDR", "REPORT_TO", "LOG_DIR",
    "PYTHON", "SWIFT", "GPU_BENCH", "VLLM_SERVER_HOST",
)  # fmt: skip
FREE_KNOBS: dict[str, tuple[str, ...]] = {
    "train": (*_JOB_PATHS, "DATASET", "RUN_NAME", "OUTPUT_DIR"),
    "train_loop": (*_JOB_PATHS, "OUTPUT_ROOT"),
    "evaluate": (
        "MODEL_PATH", "ADAPTERS", "DATA_ROOT", "SPLITS", "ANNOTATION_FILE", "IMG_ROOT", "OUTPUT_DIR",
        "TOKEN_PROB_SPLITS", "MASTER_ADDR", "PYTHON",
    ),
    "rollout_server": ("MODEL_PATH", "VLLM_SERVER_HOST", "PYTHON", "SWIFT"),
}  # fmt: skip
# Names users reach for that no launcher reads, each with what they meant (the first one the launcher has).
MISTAKEN_NAMES: dict[str, tuple[str, ...]] = {
    "LEARNING_RATE": ("LR", "LEARNING_RATES"),
    "LEARNINGRATE": ("LR", "LEARNING_RATES"),
    "BATCH_SIZE": ("PER_DEVICE_BATCH",),
    "PER_DEVICE_TRAIN_BATCH_SIZE": ("PER_DEVICE_BATCH",),
    "TRAIN_BATCH_SIZE": ("PER_DEVICE_BATCH",),
    "GRADIENT_ACCUMULATION_STEPS": ("GRAD_ACCUM",),
    "NUM_TRAIN_EPOCHS": ("EPOCHS",),
    "NUM_EPOCHS": ("EPOCHS",),
    "KL_BETA": ("BETA", "BETAS"),
    "MAX_NEW_TOKENS": ("MAX_COMPLETION_LENGTH",),
    "MAX_COMPLETION_LENGTH": ("MAX_NEW_TOKENS",),
    "NUM_GPUS": ("NPROC_PER_NODE",),
    "NPROC": ("NPROC_PER_NODE",),
    "MODEL_DIR": ("MODEL_PATH",),
    "CHECKPOINT": ("MODEL_PATH",),
    "DATASET_PATH": ("DATASET",),
    "REWARD_FUNC": ("REWARD_FUNCS",),
    "REWARD_FUNCTIONS": ("REWARD_FUNCS",),
    "SPLIT": ("SPLITS",),
    "LR": ("LEARNING_RATES",),  # train_loop.sh sweeps lists
    "BETA": ("BETAS",),
    "SAMPLE_TYPE": ("SAMPLE_TYPES",),
    "DATASET_SIZE": ("DATASET_SIZES",),
}
# Our rewards (swift_patches/rewards.py registers them) and ms-swift 4.6's built-in `orms`; a test keeps both in
# step with the code that registers them.
PROJECT_REWARDS = (
    "external_r1v_acc",
    "external_r1v_acc_normalized",
    "external_answer_strict",
    "external_format",
    "external_kg_jac",
    "external_kg_jac_original",
    "external_kg_f1",
    "external_consistency",
)
SWIFT_BUILTIN_REWARDS = (
    "toolbench",
    "math",
    "accuracy",
    "format",
    "react_format",
    "cosine",
    "repetition",
    "soft_overlong",
)


def launcher_names(launcher: str) -> set[str]:
    """Every environment variable `launcher` reads."""
    return {knob.name for knob in LAUNCHERS[launcher]} | set(FREE_KNOBS[launcher])


def mistaken_names(launcher: str, environ: dict[str, str]) -> list[str]:
    """One line per environment variable that looks like a knob of ours but is not one `launcher` reads.

    >>> mistaken_names("train", {"LEARNING_RATE": "1e-5", "NUM_GENERATION": "4", "HOME": "/root"})
    ['LEARNING_RATE=1e-5: train.sh has no such knob; did you mean LR?', \
'NUM_GENERATION=4: train.sh has no such knob; did you mean NUM_GENERATIONS?']
    """
    own = launcher_names(launcher)
    every = set().union(*(launcher_names(name) for name in LAUNCHERS))
    problems = []
    for name in sorted(environ):
        if name in own or not re.fullmatch(r"[A-Z][A-Z0-9_]+", name):
            continue
        meant = [candidate for candidate in MISTAKEN_NAMES.get(name, ()) if candidate in own]
        if not meant and name not in every:
            meant = difflib.get_close_matches(name, sorted(own), n=1, cutoff=0.85)
        if meant:
            problems.append(f"{name}={environ[name]}: {launcher}.sh has no such knob; did you mean {meant[0]}?")
    return problems


def registered_rewards(plugins: list[str]) -> tuple[str, ...]:
    """Every reward name ms-swift knows once our plugin and `plugins` (a user's own `--external_plugins`) are
    loaded: the exact registry, at the cost of importing ms-swift (seconds), so only asked for with such plugins."""
    from swift.rewards import orms
    from swift.utils import import_external_file

    for plugin in [str(Path(__file__).resolve().parents[1] / "plugin.py"), *plugins]:
        import_external_file(plugin)
    return tuple(orms)


def reward_problems(funcs: str, weights: str, plugins: list[str] | None = None) -> list[str]:
    """REWARD_FUNCS must name registered rewards (ours, ms-swift's, and those `plugins` register); REWARD_WEIGHTS,
    when set, one number per reward.

    >>> reward_problems("external_r1v_acc external_kg_jacc", "1")
    ["REWARD_FUNCS=external_r1v_acc external_kg_jacc: unknown reward 'external_kg_jacc' (did you mean \
external_kg_jac?)", 'REWARD_WEIGHTS=1: 1 weight for 2 rewards (one number per reward, or empty for all 1)']
    """
    known = registered_rewards(plugins) if plugins else (*PROJECT_REWARDS, *SWIFT_BUILTIN_REWARDS)
    names = funcs.split()
    problems = []
    if not names:
        problems.append(f"REWARD_FUNCS={funcs}: empty (at least one of {', '.join(PROJECT_REWARDS)})")
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else "ours: " + ", ".join(PROJECT_REWARDS)
            problems.append(f"REWARD_FUNCS={funcs}: unknown reward {name!r} ({hint})")
    values = weights.split()
    if values:
        if len(values) != len(names):
            problems.append(
                f"REWARD_WEIGHTS={weights}: {len(values)} weight{'s' * (len(values) != 1)} for {len(names)} rewards "
                "(one number per reward, or empty for all 1)"
            )
        for value in values:
            try:
                ok = math.isfinite(float(value))
            except ValueError:
                ok = False
            if not ok:
                problems.append(f"REWARD_WEIGHTS={weights}: {value!r} is not a number")
    return problems


def batch_problems(environ: dict[str, str], generations: list[int]) -> list[str]:
    """ms-swift's rule, checked before it loads a model: the completions of one step (PER_DEVICE_BATCH x processes x
    GRAD_ACCUM) must split into whole groups of NUM_GENERATIONS.

    >>> batch_problems({"PER_DEVICE_BATCH": "8"}, [3])
    ['NUM_GENERATIONS=3: a step holds PER_DEVICE_BATCH 8 x 1 process(es) x GRAD_ACCUM 1 = 8 completions, \
not a multiple of 3 (allowed: 2, 4, 8)']
    """
    try:
        batch = int(environ.get("PER_DEVICE_BATCH", "8"))
        processes = int(environ.get("NPROC_PER_NODE", "1")) * int(environ.get("NNODES", "1"))
        accumulation = int(environ.get("GRAD_ACCUM", "1"))
    except ValueError:
        return []  # reported by the knobs' own rules
    total = batch * processes * accumulation
    allowed = [n for n in range(2, total + 1) if total % n == 0]
    return [
        f"NUM_GENERATIONS={gens}: a step holds PER_DEVICE_BATCH {batch} x {processes} process(es) x GRAD_ACCUM "
        f"{accumulation} = {total} completions, not a multiple of {gens} (allowed: {', '.join(map(str, allowed))})"
        for gens in generations
        if gens >= 2 and total % gens
    ]


def environment_problems(launcher: str, environ: dict[str, str] | None = None) -> list[str]:
    """One line per problem of `launcher`'s environment: a knob set to a value it does not allow, knobs that do not
    fit together, a reward that does not exist, a name that looks like a knob but is not one.

    >>> env = {"NUM_GENERATIONS": "0", "LR": "1e-5", "NODE_RANK": "2", "NNODES": "2"}
    >>> for line in environment_problems("train", env):
    ...     print(line)
    NUM_GENERATIONS=0: must be an integer >= 2 (completions per prompt; GRPO compares them)
    NODE_RANK=2: must be below NNODES=2
    """
    environ = os.environ if environ is None else environ
    problems = [
        problem
        for knob in LAUNCHERS[launcher]
        if knob.name in environ and (problem := knob.problem(environ[knob.name])) is not None
    ]
    rank, nodes = environ.get("NODE_RANK", "0"), environ.get("NNODES", "1")
    if rank.isdigit() and nodes.isdigit() and int(rank) >= int(nodes):
        problems.append(f"NODE_RANK={rank}: must be below NNODES={nodes}")
    if launcher in ("train", "train_loop"):
        if "REWARD_FUNCS" in environ:
            plugins = environ.get("CHEX_EXTRA_PLUGINS", "").split()
            problems += reward_problems(environ["REWARD_FUNCS"], environ.get("REWARD_WEIGHTS", ""), plugins)
        generations = [int(g) for g in environ.get("NUM_GENERATIONS", "8").split() if g.isdigit()]
        problems += batch_problems(environ, generations)
    return problems + mistaken_names(launcher, environ)


def argparse_type(name: str) -> Callable[[str], str | int | float]:
    """An argparse `type=` applying knob `name`'s rule: `--dynamic_hd -1` fails as `DYNAMIC_HD=-1` would."""
    knob = KNOBS[name]

    def parse(value: str):
        problem = knob.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(f"{value}: must be {knob.allowed()} ({knob.what})")
        if knob.kind == "int":
            return int(value)
        return float(value) if knob.kind == "float" else value

    parse.__name__ = name.lower()
    return parse


def main(argv: list[str] | None = None) -> int:
    """`python -m utils.knobs LAUNCHER`: exit 2 with one line per bad knob, 0 when all are allowed;
    `python -m utils.knobs names LAUNCHER`: the knob names, for the launcher to pass their values
    (`tools/knobs.sh`)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "names" and argv[1] in LAUNCHERS:
        print(" ".join(sorted(launcher_names(argv[1]))))
        return 0
    if len(argv) != 1 or argv[0] not in LAUNCHERS:
        print(f"usage: python -m utils.knobs [names] {'|'.join(LAUNCHERS)}", file=sys.stderr)
        return 2
    problems = environment_problems(argv[0])
    for problem in problems:
        print(f"{argv[0]}.sh: {problem}", file=sys.stderr)
    return 2 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
