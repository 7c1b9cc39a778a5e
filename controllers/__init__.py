"""The controller-manager and the scheduler: API clients (api.client only) that drive objects toward their spec.

Where to start reading: manager.py (which controllers run, under which Lease), informer.py (list, then watch,
into a shared cache), workqueue.py and base.py (keys, one worker per key, the one retry policy), then one
controller: replicaset.py is the simplest. Each controller's pure decisions (rollout.py, scheduling.py,
statefulset.py `plan`, daemonset.py `manage`) are separate from the writes. docs/concepts.md maps each
Kubernetes object to its controller.
"""
