"""The recipe a task's shape implies, so that a program of one's own trains with no hyperparameters.

    recipe: default            # in a training config: model, training and optimizer settings from
    dataset: {program_stream: {program: multiplication, size: 10000}}     # the task's shape
    training: {output_dir: runs/mul10000}     # anything given here wins over the recipe

`default_recipe(task)` reads a compiled `Program` or an `ArithmeticSpec` and returns the
`model`, `training` and `optimizer` sections; its docstring says what it sets and why. It is
built on the recipes measured in this repository (RESULTS.md, reports/), not on a search of its
own; `hf-linear tune` remains the tool for exploring beyond it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hf_linear.data.arithmetic import ArithmeticSpec, build_arithmetic_tokenizer
from hf_linear.data.programs.compiler import Program
from hf_linear.data.sources import arithmetic_spec

# --- compiled programs: a LinearLM (configs/cpu/program_mul10000_linear.yaml, linear_universality)
# tokens to 99% over T × reach (the window times how far back the steps read), measured: 94-490
# (parity-16 0.17M, comparison-32b 0.65M, tm-increment-16 2.3M, addition-32b 7.4M, multiplication
# of 8 bits 11.3M, of < 10^4 106M, of < 10^6 271M): 1000 leaves a factor 2-10 above every one
TOKENS_PER_WINDOW_REACH = 1000
# the shipped programs' steps read at most 4 positions; a step reading k > 4 is a threshold over
# k·V inputs, k/4 times as many weights to fit (the sample complexity of a halfspace grows with them)
VALIDATED_READS = 4
# masked-map parameters above which a long CoT takes the smallest proven width (memory: 4 float32
# copies in training, 1.6 GB at this size)
MAX_MIXING_PARAMETERS = 100_000_000

# --- arithmetic formats: an MLPLM, the two recipes measured on multiplication with the `lsb` CoT
SHORT = {"window": 81, "tokens": 20_000_000}  # the main job: 4x4, 100.0% on seeds 0, 1, 2
# 8x8 (mul8x8_lsb_mlp_centered.yaml): 100.0% / 99.9% / 100.0% on seeds 0, 1, 2 (seed 1: the one on
# which the per-row rate stalls)
LONG = {"window": 271, "tokens": 400_000_000}
# the power law through both: tokens ∝ T^2.48
TOKENS_EXPONENT = math.log(LONG["tokens"] / SHORT["tokens"]) / math.log(LONG["window"] / SHORT["window"])
SHORT_WINDOWS = 128  # up to here the short recipe (window 81); beyond, the long one (271)

MIN_STEPS = 300  # below this a warmup and ten evaluations leave no schedule to speak of
EVALUATIONS = 10


@dataclass(frozen=True)
class TaskShape:
    """What the recipe reads of a task."""

    kind: str  # "program" (compiled: every step a linear threshold) or "arithmetic" (a CoT format)
    window: int  # T: tokens of an example with [EOS], the model's window
    vocabulary: int  # V
    reads: int | None  # positions the widest step reads (programs)
    reach: int | None  # how far back the farthest read of a step lies (programs)

    @classmethod
    def of(cls, task: Program | ArithmeticSpec) -> TaskShape:
        if isinstance(task, Program):
            steps = [(position, step.reads) for position, step in task.steps.items() if step.reads]
            return cls(
                "program",
                task.length + 1,
                len(task.vocabulary),
                max((len(reads) for _, reads in steps), default=0),
                max((position - min(reads) for position, reads in steps), default=1),
            )
        if isinstance(task, ArithmeticSpec):
            return cls("arithmetic", task.length + 1, len(build_arithmetic_tokenizer()), None, None)
        raise ValueError(f"recipe: default needs a compiled program or an arithmetic format, got {type(task).__name__}")


def default_recipe(task: Program | ArithmeticSpec) -> dict:
    """The `model`, `training` and `optimizer` sections for `task` (a compiled Program or an
    ArithmeticSpec), from its shape: window T (tokens with [EOS]), vocabulary V, and for a program
    how many positions its steps read and how far back (the reach R).

    A compiled program trains a **LinearLM** (every step is a linear threshold of earlier tokens:
    the paper's claim, and what linear_universality and the LinearLM multiplications trained):

    * width d = 8 for V ≤ 9 (multiplication of operands < 10^4: 100.0% at d = 8 with V = 9),
      16 for V ≤ 18 (the Turing machines of linear_universality: V = 15, 18), else min(V, 32)
      (the certificate's d = V; not measured); halved down to 8 while the masked map's
      T(T+1)/2·d² parameters exceed 100M (10^8 operands: T = 2,326 trains at d = 8);
    * batch 64, AdamW lr 1e-2, β₂ 0.95, no weight decay, gradient clipping at 1, linear decay:
      the recipe of both (no decay to 0 before the end: the last steps polish the rare inputs that
      a stop at 99% validation left at 95.8-98.6% held out);
    * training tokens 1000 · T · R · max(1, reads/4): the tokens to 99% measured on seven
      programs were 94-490 × T·R (a Turing machine reads 17 positions back and needs little, a
      multiplication reads the whole trace back and needs much), so 1000 leaves a factor 2-10;
    * warmup ~1% of the steps (mul10000: 50 of 4,000), at least 20 (linear_universality), at
      most 200.

    An arithmetic format trains an **MLPLM** (ReLU after the masked map: the paper's model; a
    digit of a decimal product is no linear threshold of earlier digits):

    * T ≤ 128: the main job's recipe (found by `hf-linear tune`, 100.0% on seeds 0, 1, 2):
      d = 64, batch 128, lr 6.47e-3, β₂ 0.95, weight decay 0.178, 300 warmup steps;
    * longer: the 8x8 recipe (T = 271): d = 32 (the step's cost grows as T²d²), batch 256,
      lr 7.08e-3, the same β₂ and weight decay, 200 warmup steps, and the masked map's weight
      gradient taken from batch-centred inputs (without it the late positions' units die, pushed
      below zero by every block of their long rows at once: centered_gradient.py; the per-row
      rate of fan_in_lr.py reached 100.0% on seed 0 and stalled on seed 1, this ≥ 99.9% on seeds
      0, 1, 2);
    * training tokens on the power law through both measured budgets, 20M at T = 81 and 400M at
      T = 271: 20M · (T/81)^2.48.

    Every recipe: bf16 autocast (fp32 where the CPU has no native bf16), ten evaluations and
    checkpoints, at least 300 steps.
    """
    shape = TaskShape.of(task)
    if shape.kind == "program":
        model = {"type": "linear_lm", "hidden_size": program_width(shape)}
        batch = 64
        tokens = TOKENS_PER_WINDOW_REACH * shape.window * shape.reach * max(1.0, shape.reads / VALIDATED_READS)
        steps = max(MIN_STEPS, round(tokens / (batch * shape.window)))
        training = {
            "learning_rate": 1.0e-2,
            "weight_decay": 0.0,
            "warmup_steps": min(200, max(20, round(steps / 80))),
        }
        optimizer = {}
    else:
        short = shape.window <= SHORT_WINDOWS
        model = {"type": "mlp_lm", "hidden_size": 64 if short else 32}
        batch = 128 if short else 256
        tokens = SHORT["tokens"] * (shape.window / SHORT["window"]) ** TOKENS_EXPONENT
        steps = max(MIN_STEPS, round(tokens / (batch * shape.window)))
        training = {
            "learning_rate": 6.47e-3 if short else 7.08e-3,
            "weight_decay": 0.178,
            "warmup_steps": 300 if short else 200,
        }
        optimizer = {} if short else {"center_mixing_gradient": True}
    interval = math.ceil(steps / EVALUATIONS)
    training = {
        "per_device_train_batch_size": batch,
        **training,
        "adam_beta2": 0.95,
        "lr_scheduler_type": "linear",
        "max_grad_norm": 1.0,
        "max_steps": steps,
        "bf16": True,
        "logging_steps": max(1, min(100, steps // 50)),
        "eval_strategy": "steps",
        "eval_steps": interval,
        "save_strategy": "steps",
        "save_steps": interval,
        "save_total_limit": 1,
    }
    return {"model": model, "training": training, "optimizer": optimizer}


def program_width(shape: TaskShape) -> int:
    """d of a program's LinearLM (see `default_recipe`)."""
    width = 8 if shape.vocabulary <= 9 else 16 if shape.vocabulary <= 18 else min(shape.vocabulary, 32)
    while width > 8 and shape.window * (shape.window + 1) // 2 * width * width > MAX_MIXING_PARAMETERS:
        width = max(8, width // 2)
    return width


def recipe_task(source) -> Program | ArithmeticSpec:
    """The task a data source generates (a compiled program, or an arithmetic format); ValueError
    for data read from files or the Hub, whose shape the recipe cannot know beforehand."""
    compiled = getattr(source, "compiled", None)
    if isinstance(compiled, Program):
        return compiled
    spec = arithmetic_spec({source.key: source.arguments}) if isinstance(source.arguments, dict) else None
    if spec is None:
        raise ValueError(
            f"recipe: default is chosen from a generated task's shape (a program or arithmetic section); "
            f"a {source.key} dataset has none: give the model and training settings"
        )
    return spec
