"""The Ray cluster a study or a search runs on, and what each unit of work (a run, a trial) declares."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class RayResources:
    address: str | None = None  # a cluster to join (e.g. auto, ray://HOST:10001); None: a local instance
    cpus: float = 1  # per run or trial; Ray sets its OMP_NUM_THREADS, so its torch uses that many threads
    gpus: float = 0

    def check(self, available: dict) -> None:
        """Ray would wait forever for work that fits on no node: refuse it, saying what is missing."""
        for name, wanted in (("CPU", self.cpus), ("GPU", self.gpus)):
            if wanted and available.get(name, 0) < wanted:
                raise ValueError(f"a run wants {wanted:g} {name}(s), the Ray cluster has {available.get(name, 0):g}")


@contextlib.contextmanager
def ray_session(resources: RayResources) -> Iterator[object]:
    """The `ray` module, connected: to `resources.address`, or to a local instance started for
    the call (no dashboard: seconds of start-up and a web server nobody asked for) and shut down
    after it; an instance already running in this process is used as it is."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=resources.address) if resources.address else ray.init(include_dashboard=False)
    try:
        resources.check(ray.cluster_resources())
        yield ray
    finally:
        if started:
            ray.shutdown()
