"""`hf-linear study --engine ray`: each run of a study is a Ray task; Ray does the scheduling.

    pip install -e ".[engines]"
    hf-linear study configs/studies/formats_4x4.yaml --engine ray [--address ADDR] [--cpus-per-run N] [--gpus-per-run N]

Each run declares its resources (`num_cpus`, `num_gpus`) and Ray runs as many at once as the
cluster has room for: a local instance (no --address) uses this machine's cores. Ray sets
OMP_NUM_THREADS of a task to its CPUs, so a run's torch uses that many threads.

Everything else is the sequential engine's: a worker runs `study.train_unless_finished` (a run
with a complete checkpoint resumes from it), the driver checks each run before it is submitted
(finished runs are skipped, a changed config is an error) and writes a finished run's line of
results.jsonl as soon as the run ends (one writer: no concurrent appends), and the report at the
end. A worker that dies (killed, out of memory, a lost node) is restarted by Ray (the task's
`max_retries`), and its run resumes from its last complete checkpoint; a run that still fails is
reported as failed and the others go on.

On a cluster (--address), every node needs hf-linear installed and the study directory and the
data paths of the configs on a shared filesystem.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path

from hf_linear.studies.engines.ray_cluster import RayResources, ray_session
from hf_linear.studies.study import Run, Study, is_finished, record_result, train_unless_finished


def train_in_worker(study: Study, study_dir: Path, run: Run, config, callbacks) -> str:
    """The task of one run: its status, "failed: ..." for a run that cannot train (no retry:
    it would fail again)."""
    try:
        return train_unless_finished(study, study_dir, run, config, callbacks)
    except ValueError as error:
        traceback.print_exc()
        return f"failed: {error}"


@dataclass
class RayEngine:
    resources: RayResources = RayResources()  # the cluster, and what each run declares
    max_retries: int = 3  # restarts of a run whose worker died

    def __call__(self, study: Study, study_dir: Path, jobs: list[tuple[Run, object]], callbacks) -> dict:
        with ray_session(self.resources) as ray:
            return self.run(ray, study, study_dir, jobs, callbacks)

    def run(self, ray, study: Study, study_dir: Path, jobs, callbacks) -> dict:
        task = ray.remote(train_in_worker).options(
            num_cpus=self.resources.cpus,
            num_gpus=self.resources.gpus,
            max_retries=self.max_retries,
            retry_exceptions=False,
        )
        outcome, pending = {}, {}
        for run, config in jobs:
            try:
                if is_finished(study_dir, run, config):
                    outcome[run.name] = "skipped"
                    record_result(study_dir, run, "skipped")
                    continue
            except ValueError as error:
                outcome[run.name] = report_failure(run, error)
                continue
            print(f"hf-linear study: run {run.name} submitted to Ray", flush=True)
            pending[task.remote(study, study_dir, run, config, callbacks)] = run
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            run = pending.pop(ready)
            try:
                status = ray.get(ready)
            except ray.exceptions.RayError as error:  # raised in the task, or its worker died max_retries + 1 times
                status = f"failed: {type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
            if status.startswith("failed"):
                outcome[run.name] = report_failure(run, status.removeprefix("failed: "))
            else:
                record_result(study_dir, run, status)
                outcome[run.name] = status
        return {run.name: outcome[run.name] for run, _ in jobs}  # in the grid's order


def report_failure(run: Run, error) -> str:
    print(f"hf-linear study: run {run.name} failed: {error}", flush=True)
    return f"failed: {error}"
