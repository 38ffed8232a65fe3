"""Where a training step of the main job spends its CPU time: self CPU time by op, and the
share of the matrix multiplications (target: ≥ 50%).

    python bench/profile_step.py                 # main job: MLPLM d=64, T=81, V=119, batch 128
    python bench/profile_step.py --hidden 32 --batch 256   # the main job until 2026-12-06
    python bench/profile_step.py --steps 3 --rows 30 --precision fp32 --threads 1

The step is the one `hf-linear train configs/cpu/mul4x4_lsb_mlp.yaml` runs, through the same
transformers.Trainer: bf16 autocast where the CPU has native bf16
(`hf_linear.runtime.cpu_has_native_bf16()`, else fp32; accelerate also casts the returned
logits to fp32), batches from hf_linear's collator with the 11 prompt tokens
("[BOS] a a a a x b b b b =") labelled -100 and the loss normalised by the labelled tokens,
backward, gradient clipping, fused AdamW (the Trainer's default) with the config's learning
rate, beta2 and weight decay.
Random token ids stand in for the data (the step's cost does not depend on their values).

Steps 1..--warmup are discarded, the next --timed steps are timed (wall time between the ends
of consecutive steps, batch collation included: median and min–max), the next --steps are
profiled. Short on purpose: a few seconds in all. Caveats: the profiler's own allocations make
the profiled steps fault in hundreds to thousands of fresh pages per step that unprofiled steps
reuse (the script prints both counts), which inflates ops writing large new outputs; and on a
shared machine any op can be stretched by a descheduled thread. Compare shares from runs under
the same load, and step times from interleaved runs.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time

import hf_linear  # noqa: F401  first: sets the OpenMP wait policy before torch loads (hf_linear/omp_policy.py)

# isort: split
import torch
import yaml
from torch.profiler import ProfilerActivity, profile
from transformers import Trainer, TrainerCallback, TrainingArguments

from hf_linear import MLPLMConfig, MLPLMForCausalLM
from hf_linear.data.collator import CausalLMCollator
from hf_linear.resources import packaged_config
from hf_linear.runtime import cpu_has_native_bf16, machine_description, tune_cpu_allocator

# The main job's data (configs/cpu/mul4x4_lsb_mlp.yaml): 80 tokens + [EOS], 119 tokens in the
# vocabulary, 11 prompt tokens; its width, batch and optimiser are read from the config itself.
MAIN_JOB_DATA = {"context_length": 81, "vocab_size": 119, "prompt_length": 11}


def main_job() -> dict:
    """The shipped main job's shape and optimiser settings (hf_linear.resources.DEFAULT_CONFIG)."""
    config = yaml.safe_load(packaged_config().read_text())
    training = config["training"]
    return {
        **MAIN_JOB_DATA,
        "hidden_size": config["model"]["hidden_size"],
        "batch": training["per_device_train_batch_size"],
        "learning_rate": training["learning_rate"],
        "weight_decay": training["weight_decay"],
        "adam_beta2": training.get("adam_beta2", 0.999),
        "max_grad_norm": training["max_grad_norm"],
    }


# Ops that are matrix multiplications (their self time is the kernel's; aten::matmul, linear
# and the autograd nodes only dispatch to these).
MATMUL_OPS = {
    "aten::mm",
    "aten::addmm",
    "aten::addmm_",
    "aten::bmm",
    "aten::baddbmm",
    "aten::baddbmm_",
    "aten::addbmm",
    "aten::_addmm_activation",
}


class StepClock(TrainerCallback):
    """Times steps warmup+1 .. warmup+timed and profiles the `profiled` steps after them; counts
    the minor page faults of both windows."""

    def __init__(self, warmup: int, timed: int, profiled: int):
        self.warmup, self.timed, self.profiled = warmup, timed, profiled
        self.ends, self.profiler = [], profile(activities=[ProfilerActivity.CPU])
        self.faults = {}  # step → minor page faults of the process so far

    def on_step_end(self, args, state, control, **kwargs):
        step = state.global_step
        if step in (self.warmup, self.warmup + self.timed, self.warmup + self.timed + self.profiled):
            self.faults[step] = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        if self.warmup <= step <= self.warmup + self.timed:
            self.ends.append(time.perf_counter())
        if step == self.warmup + self.timed:
            self.profiler.start()
        elif step == self.warmup + self.timed + self.profiled:
            self.profiler.stop()

    def step_ms(self) -> list[float]:
        return [1e3 * (b - a) for a, b in zip(self.ends[:-1], self.ends[1:])]

    def faults_per_step(self) -> tuple[float, float]:
        """Minor page faults per step: (timed steps, profiled steps)."""
        a, b, c = (self.faults[k] for k in sorted(self.faults))
        return (b - a) / self.timed, (c - b) / self.profiled


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    job = main_job()
    parser.add_argument("--batch", type=int, default=job["batch"])
    parser.add_argument("--hidden", type=int, default=job["hidden_size"], help="d (default: the main job's)")
    parser.add_argument(
        "--precision",
        choices=["auto", "bf16", "fp32"],
        default="auto",
        help="auto: bf16 autocast where the CPU has native bf16, as `hf-linear train`",
    )
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--timed", type=int, default=10, help="steps timed (not profiled)")
    parser.add_argument("--steps", type=int, default=5, help="steps profiled")
    parser.add_argument("--rows", type=int, default=20, help="ops shown in the table")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's own choice, as `hf-linear train`); on a busy "
        "machine 1 thread shows the op mix without waits for a descheduled thread",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    bf16 = cpu_has_native_bf16() if args.precision == "auto" else args.precision == "bf16"
    shape = dict(job, batch=args.batch, hidden_size=args.hidden)
    tune_cpu_allocator()  # as `hf-linear train`

    torch.manual_seed(0)
    T, V = shape["context_length"], shape["vocab_size"]
    model = MLPLMForCausalLM(MLPLMConfig(hidden_size=shape["hidden_size"], context_length=T, vocab_size=V))
    steps = args.warmup + args.timed + args.steps
    ids = torch.randint(0, V, (steps * shape["batch"], T)).tolist()
    data = [{"input_ids": row, "prompt_length": shape["prompt_length"]} for row in ids]
    clock = StepClock(args.warmup, args.timed, args.steps)
    with tempfile.TemporaryDirectory() as output_dir:
        training = TrainingArguments(
            output_dir=output_dir,
            per_device_train_batch_size=shape["batch"],
            max_steps=steps,
            learning_rate=shape["learning_rate"],
            weight_decay=shape["weight_decay"],
            adam_beta2=shape["adam_beta2"],
            max_grad_norm=shape["max_grad_norm"],
            bf16=bf16,
            use_cpu=True,
            remove_unused_columns=False,
            include_num_input_tokens_seen=True,
            dataloader_num_workers=0,
            save_strategy="no",
            logging_strategy="no",
            report_to=[],
            disable_tqdm=True,
            seed=0,
        )
        trainer = Trainer(
            model=model, args=training, train_dataset=data, data_collator=CausalLMCollator(0), callbacks=[clock]
        )
        trainer.train()

    machine = machine_description()
    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(
        f"machine: {machine['cpu']}, native bf16: {machine['native_bf16']}, threads: {machine['threads']}, "
        f"load average (1 min) at the end: {load}"
    )
    print(
        f"step: MLPLM d={shape['hidden_size']} T={T} V={V} batch {shape['batch']}, "
        f"{'bf16 autocast' if bf16 else 'fp32'}, fused AdamW, clip 1.0 (transformers.Trainer)"
    )
    ms = clock.step_ms()
    print(f"step time: {statistics.median(ms):.1f} ms median ({min(ms):.1f}–{max(ms):.1f}) over {len(ms)} steps")
    timed_faults, profiled_faults = clock.faults_per_step()
    # The profiler's own allocations move the heap under the step's large tensors: pages the
    # unprofiled step reuses are faulted in afresh, which inflates the ops that write large new
    # outputs (copy_, fill_, log_softmax backward). So the matmul share below is a lower bound.
    print(f"minor page faults per step: {timed_faults:.0f} unprofiled, {profiled_faults:.0f} profiled")

    events = clock.profiler.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS)
    print(f"\nself CPU time of {args.steps} profiled steps, by op:")
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=60))
    print(
        f"matrix multiplications ({', '.join(sorted(MATMUL_OPS & {e.key for e in events}))}): "
        f"{100 * matmul / total:.1f}% of self CPU time ({total / 1e3 / args.steps:.1f} ms per step)"
    )


if __name__ == "__main__":
    main()
