"""Running controllers: shared informers, one event recorder, every controller's workers, under leader election.

Every master runs a controller-manager and a scheduler; a Lease in kube-system picks the one that acts.
"""
from __future__ import annotations

import asyncio
from typing import Sequence

from api.client import ApiClient
from api.event_recorder import EventRecorder
from controllers.base import Context, Controller, Options
from controllers.credentials import controller_client
from controllers.daemonset import DaemonSetController
from controllers.deployment import DeploymentController
from controllers.disruption import DisruptionController
from controllers.endpoints import EndpointsController
from controllers.garbage_collector import GarbageCollector
from controllers.informer import Informers
from controllers.job import JobController
from controllers.leader_election import LeaderElector, Timing
from controllers.namespace import NamespaceController
from controllers.node_lifecycle import NodeLifecycleController
from controllers.replicaset import ReplicaSetController
from controllers.replication_controller import ReplicationControllerController
from controllers.root_ca_publisher import RootCAPublisher
from controllers.scheduler import Scheduler
from controllers.serviceaccounts import ServiceAccountsController
from controllers.statefulset import StatefulSetController

# The controller-manager's controllers, in start order.
CONTROLLERS: list[type[Controller]] = [
    ReplicaSetController,
    ReplicationControllerController,
    DeploymentController,
    StatefulSetController,
    DaemonSetController,
    JobController,
    EndpointsController,
    NamespaceController,
    GarbageCollector,
    NodeLifecycleController,
    DisruptionController,
    ServiceAccountsController,
    RootCAPublisher,
]
# The scheduler is a controller of unbound pods, elected on its own Lease.
SCHEDULERS: list[type[Controller]] = [Scheduler]

COMPONENTS = {  # component -> (its Lease in kube-system, the event source it reports as, its controllers)
    "controller-manager": ("kube-controller-manager", "controller-manager", CONTROLLERS),
    "scheduler": ("kube-scheduler", "default-scheduler", SCHEDULERS),
}


async def run_controllers(client: ApiClient, classes: Sequence[type[Controller]], options: Options,
                          component: str, host: str = "") -> None:
    """Build the controllers over shared informers, wait for the caches, run until cancelled. The informers list and
    watch as the component (`client`), as kube-controller-manager's shared informers do; each controller writes,
    reads and records Events as its own service account (controllers/credentials.py) when it has one."""
    informers = Informers(client)
    own: list[ApiClient] = []

    def context(cls: type[Controller]) -> Context:
        acting = client
        if cls.service_account and options.service_account_credentials:
            acting = controller_client(client, cls.service_account)
            own.append(acting)
        return Context(acting, informers, EventRecorder(acting, component, host), options)

    controllers = [cls(context(cls)) for cls in classes]
    informers.start()
    try:
        # Each controller's account and first token now (one that fails is asked for again at its first request).
        await asyncio.gather(*(c.credentials.token() for c in own if c.credentials), return_exceptions=True)
        await informers.wait_synced()
        await asyncio.gather(*(c.run() for c in controllers))
    finally:
        informers.stop()
        await asyncio.gather(*(c.close() for c in own), return_exceptions=True)


async def run_component(client: ApiClient, component: str, identity: str, timing: Timing, options: Options,
                        host: str = "") -> None:
    lease, source, classes = COMPONENTS[component]
    if component == "controller-manager" and "*" not in options.controllers:
        classes = [c for c in classes if c.name in options.controllers]
    elector = LeaderElector(client, lease, identity, timing)
    await elector.run(lambda: run_controllers(client, classes, options, source, host))
