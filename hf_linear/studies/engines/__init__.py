"""Where the work of a study or a search runs, beyond this process: everything on Ray, in one shape.

* `ray_cluster` — `RayResources` (the cluster to join, the CPUs and GPUs one unit of work
                  declares) and `ray_session` (join it, or start a local instance for the call);
* `ray_runs`    — `hf-linear study --engine ray`: each run of a grid a Ray task;
* `ray_tune`    — `hf-linear tune --engine ray`: each trial of a search a Ray Tune trial.

Both take a `RayResources` from the same command-line flags (--address, --cpus-per-..., --gpus-per-...).
The default engines need no Ray: a study's runs one after the other (`study.run_sequentially`),
a search's trials through Optuna in this process (`tune.backends`).
"""
