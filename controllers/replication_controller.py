"""The ReplicationController controller: ReplicationControllers (core/v1, the ReplicaSet's predecessor) kept
at spec.replicas pods exactly as ReplicaSets are (Kubernetes runs the same code for both). The only
difference is the selector, a plain map of labels, which controllers/objects.py `matches` reads as such."""
from __future__ import annotations

from controllers.replicaset import ReplicaSetController


class ReplicationControllerController(ReplicaSetController):
    name = "replicationcontroller"
    component = "replication-controller"
    service_account = "replication-controller"
    kind, plural = "ReplicationController", "replicationcontrollers"
