"""Supervision: the providers' workers kept running by policy (docs/supervision.md, docs/lifecycle.md).

It knows the plan, the envs, the launchers and the transport; nothing above it (the host's front door, the
gateway, the CLI). From the top down:

- ``supervisor``: the provider set: start in dependency order, lazy starts within ``max_running``, stop.
- ``reload``: what a new run config changes, applied only through the set's and the providers' methods.
- ``provider``: one provider, a flat set of equal replicas.
- ``replica``: one line of workers: states, restarts, calls, rolling replace, ``stop(deadline)``/``kill()``.
- ``starter``: how a replica's workers come to be (a standby, or new; cancelled when the host stops).
- ``calls``: how a call reaches a replica's worker; ``readiness``: what a call arriving now is told.
- ``running``: one running worker and everything that must happen when it ends.
- ``watchdogs``: the loops attached to a running worker (liveness, memory, idle).
- ``admission``, ``restarts``, ``call_log``, ``status``, ``context``: what those share.

Nothing is imported here, so that the CLI can import ``status`` or ``reload.ReloadReport`` alone.
"""
