"""The same service on Ray Serve: replicas of the app (each with the model and its own dynamic
batching) behind Ray's HTTP proxy, on one machine or a cluster, with Ray's autoscaling.

    from ray import serve
    from nertool.serving import ServeConfig
    from nertool.serving.rayserve import application

    serve.run(application(ServeConfig(model="en-fast"), num_replicas=2))

or ``serve run nertool.serving.rayserve:app model=en-fast`` with Ray's own CLI.
"""
from __future__ import annotations

from typing import Any

from nertool.serving.app import ServeConfig, create_app


def application(config: ServeConfig, num_replicas: int | str = 1, autoscaling: dict[str, Any] | None = None,
                cpus_per_replica: float = 1.0):
    """A bound Ray Serve application of the service for ``config``: ``num_replicas`` replicas
    (or ``autoscaling``, Ray Serve's ``autoscaling_config``: min/max replicas, target requests
    per replica), each using ``cpus_per_replica`` CPUs (its torch threads)."""
    import os

    from ray import serve

    from nertool.runtime import bound_kernel_caches

    threads = max(1, int(cpus_per_replica))
    config = ServeConfig(**{**config.__dict__, "threads": config.threads or threads})
    env = {k: v for k, v in os.environ.items() if k.startswith("ONEDNN_")}
    bound_kernel_caches(env)  # the replicas' processes: a bounded oneDNN kernel cache, as nertool serve's
    # Ray's own limit of concurrent requests a replica (5 by default) would starve the replica's
    # dynamic batching: let the service's bounded queue (429 past it) be the limit instead
    options: dict[str, Any] = {"ray_actor_options": {"num_cpus": cpus_per_replica, "runtime_env": {"env_vars": env}},
                               "max_ongoing_requests": config.max_queue + 1}
    if autoscaling is not None:
        options["autoscaling_config"] = autoscaling
    else:
        options["num_replicas"] = num_replicas

    @serve.deployment(name="nertool", **options)
    @serve.ingress(create_app(config))
    class Nertool:
        """One replica: the app (its lifespan loads the model and starts the batching)."""

    return Nertool.bind()


def app(args: dict[str, str]):
    """The builder for ``serve run nertool.serving.rayserve:app model=en-fast replicas=2``."""
    known = {"model", "device", "lang", "api_key"}
    config = ServeConfig(**{k: v for k, v in args.items() if k in known})
    return application(config, num_replicas=int(args.get("replicas", 1)),
                       cpus_per_replica=float(args.get("cpus_per_replica", 1)))
