"""The scheduler's decisions, pure: which nodes a pod fits (filters), which fits best (scores), and the words for a
pod that fits nowhere. No I/O and no clock: controllers/scheduler.py feeds it caches and does the writing.

One scheduling cycle, as kube-scheduler's framework runs it:

    infos = [NodeInfo(node) + add_pod(...) for each node]    # what every node has: allocatable, pods, ports
    node, reasons = schedule(pod, infos, rng)                 # filter every node, score the feasible ones
    if node is None: fit_error(len(infos), reasons)           # "0/3 nodes are available: 1 Insufficient cpu, ..."

Filters run in kube-scheduler's default order (NodeUnschedulable, TaintToleration, NodeAffinity, NodePorts,
NodeResourcesFit) and a node is reported under the first one that rejects it. A node that is not Ready is refused
as if it carried the taint the node lifecycle controller puts on it (`node.kubernetes.io/not-ready` or
`node.kubernetes.io/unreachable`, NoSchedule), so a pod that tolerates it may still go there, as upstream.
Scores are kube-scheduler's integers 0..100, weighted: NodeResourcesFit least-allocated (1), spreading of the
pods of one controller across nodes (2, in place of PodTopologySpread's default constraints), preferred node
affinity (2) and PreferNoSchedule taints (3). The best total wins; ties are broken at random.
"""
from __future__ import annotations

import ipaddress

import functools
import random
from collections import Counter
from typing import Any, Callable, Iterable

from controllers.quantity import milli_value, value

Obj = dict[str, Any]
Resources = dict[str, int]  # "cpu" in millicores, everything else ("memory", "nvidia.com/gpu") in units

MAX_SCORE = 100
# Scoring pretends a pod without requests asks for this much, so such pods still spread (upstream's non-zero).
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"

# The reasons kubectl shows, worded as kube-scheduler's plugins word them.
UNSCHEDULABLE = "node(s) were unschedulable"
AFFINITY = "node(s) didn't match Pod's node affinity/selector"
PORTS = "node(s) didn't have free ports for the requested pod ports"
TOO_MANY_PODS = "Too many pods"


# -- what a pod asks for --------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4096)
def _amount(name: str, quantity: Any) -> int:
    return milli_value(quantity) if name == "cpu" else value(quantity)


def _container_requests(container: Obj) -> Resources:
    """requests, with limits standing in for requests left out (as the API server's defaulting does)."""
    resources = container.get("resources") or {}
    wanted = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    return {name: _amount(name, q) for name, q in wanted.items()}


_last_requests: tuple[Obj | None, Resources] = (None, {})


def pod_requests(pod: Obj) -> Resources:
    """The pod's effective requests: its containers (and sidecars) summed, at least its largest init container,
    plus spec.overhead. Remembered for the last pod asked about (by identity: cached objects are never changed
    in place), since one scheduling decision asks once per node."""
    global _last_requests
    if _last_requests[0] is pod:
        return _last_requests[1]
    spec = pod.get("spec") or {}
    total: Resources = {}
    init_peak: Resources = {}
    sidecars: Resources = {}
    for container in spec.get("initContainers") or []:
        wanted = _container_requests(container)
        if container.get("restartPolicy") == "Always":  # a sidecar runs beside everything after it
            _add(sidecars, wanted)
            _add(total, wanted)
        else:
            for name, amount in wanted.items():
                init_peak[name] = max(init_peak.get(name, 0), amount + sidecars.get(name, 0))
    for container in spec.get("containers") or []:
        _add(total, _container_requests(container))
    for name, amount in init_peak.items():
        total[name] = max(total.get(name, 0), amount)
    _add(total, {name: _amount(name, q) for name, q in (spec.get("overhead") or {}).items()})
    _last_requests = (pod, total)
    return total


def _add(into: Resources, more: Resources) -> None:
    for name, amount in more.items():
        into[name] = into.get(name, 0) + amount


def nonzero_requests(requests: Resources) -> tuple[int, int]:
    """(millicpu, memory) for scoring: a pod that asks for nothing is counted as a small one."""
    return requests.get("cpu") or DEFAULT_MILLI_CPU, requests.get("memory") or DEFAULT_MEMORY


def host_ports(pod: Obj) -> list[tuple[str, str, int]]:
    """(hostIP, protocol, hostPort) of every container port that asks for a host port ("" hostIP: every address)."""
    out = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                out.append((port.get("hostIP") or "", port.get("protocol") or "TCP", int(port["hostPort"])))
    return out


def _every_address(host_ip: str) -> bool:
    """A hostIP left out or unspecified (0.0.0.0, ::) holds the port on every address of the node."""
    try:
        return not host_ip or ipaddress.ip_address(host_ip).is_unspecified
    except ValueError:
        return False


def owner_uid(pod: Obj) -> str | None:
    ref = next((r for r in pod["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
    return ref.get("uid") if ref else None


# -- what a node has ------------------------------------------------------------------------------------------

class NodeInfo:
    """A node and the pods on it (bound or assumed), with the sums the filters and scores need, kept up to date
    as pods come and go instead of being added up again for every pod scheduled."""

    def __init__(self, node: Obj | None = None) -> None:
        self.node: Obj | None = None
        self.allocatable: Resources = {}
        self.pods: dict[str, Obj] = {}
        self.requested: Counter[str] = Counter()
        self.nonzero_cpu = 0
        self.nonzero_memory = 0
        self.owners: Counter[str] = Counter()
        self.ports: Counter[tuple[str, str, int]] = Counter()
        if node is not None:
            self.set_node(node)

    @property
    def name(self) -> str:
        return self.node["metadata"]["name"] if self.node else ""

    def set_node(self, node: Obj) -> None:
        self.node = node
        allocatable = (node.get("status") or {}).get("allocatable") or (node.get("status") or {}).get("capacity") or {}
        self.allocatable = {name: _amount(name, q) for name, q in allocatable.items()}

    def add_pod(self, key: str, pod: Obj) -> None:
        if key in self.pods:
            self.remove_pod(key)
        self.pods[key] = pod
        self._count(pod, +1)

    def remove_pod(self, key: str) -> None:
        pod = self.pods.pop(key, None)
        if pod is not None:
            self._count(pod, -1)

    def _count(self, pod: Obj, sign: int) -> None:
        requests = pod_requests(pod)
        for name, amount in requests.items():
            self.requested[name] += sign * amount
        cpu, memory = nonzero_requests(requests)
        self.nonzero_cpu += sign * cpu
        self.nonzero_memory += sign * memory
        owner = owner_uid(pod)
        if owner:
            self.owners[owner] += sign
        for port in host_ports(pod):
            self.ports[port] += sign
        self.owners += Counter()  # drop zero counts
        self.ports += Counter()


def condition_taints(node: Obj) -> list[Obj]:
    """The NoSchedule taint a node's Ready condition implies (TaintNodesByCondition): none when Ready."""
    ready = next((c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"), None)
    status = (ready or {}).get("status")
    if status == "True":
        return []
    key = TAINT_UNREACHABLE if status == "Unknown" else TAINT_NOT_READY
    return [{"key": key, "effect": "NoSchedule"}]


# -- filters: (pod, node info) -> the reasons it does not fit, [] if it does ---------------------------------

def tolerates(toleration: Obj, taint: Obj) -> bool:
    """Does one toleration tolerate one taint (empty effect: any effect; Exists with no key: every taint)?"""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("key") and toleration["key"] != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def _tolerated(pod: Obj, taint: Obj) -> bool:
    return any(tolerates(t, taint) for t in (pod.get("spec") or {}).get("tolerations") or [])


def filter_unschedulable(pod: Obj, info: NodeInfo) -> list[str]:
    if (info.node.get("spec") or {}).get("unschedulable") and not _tolerated(
            pod, {"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"}):
        return [UNSCHEDULABLE]
    return []


def filter_taints(pod: Obj, info: NodeInfo) -> list[str]:
    """NoSchedule and NoExecute taints (and the not-ready one) need a toleration; PreferNoSchedule only scores."""
    for taint in ((info.node.get("spec") or {}).get("taints") or []) + condition_taints(info.node):
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerated(pod, taint):
            return [f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value') or ''}}}"]
    return []


def _expression_matches(expression: Obj, labels: dict[str, str]) -> bool:
    key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
    present = key in labels
    if operator == "In":
        return present and labels[key] in values
    if operator == "NotIn":
        return not present or labels[key] not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and len(values) == 1:
        try:
            have, bound = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > bound if operator == "Gt" else have < bound
    return False


def term_matches(term: Obj, node: Obj) -> bool:
    """A NodeSelectorTerm: all its matchExpressions (labels) and matchFields (metadata.name); an empty term
    matches nothing."""
    expressions, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not expressions and not fields:
        return False
    labels = node["metadata"].get("labels") or {}
    name_field = {"metadata.name": node["metadata"]["name"]}
    return (all(_expression_matches(e, labels) for e in expressions)
            and all(e.get("key") == "metadata.name" and _expression_matches(e, name_field) for e in fields))


def _node_affinity(pod: Obj) -> Obj:
    return ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}


def filter_node_affinity(pod: Obj, info: NodeInfo) -> list[str]:
    """spec.nodeSelector (every label) and required node affinity (any one of the nodeSelectorTerms)."""
    labels = info.node["metadata"].get("labels") or {}
    selector = (pod.get("spec") or {}).get("nodeSelector") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return [AFFINITY]
    required = _node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is not None and not any(term_matches(t, info.node) for t in required.get("nodeSelectorTerms") or []):
        return [AFFINITY]
    return []


def _ports_conflict(a: tuple[str, str, int], b: tuple[str, str, int]) -> bool:
    return a[1:] == b[1:] and (a[0] == b[0] or _every_address(a[0]) or _every_address(b[0]))


def filter_ports(pod: Obj, info: NodeInfo) -> list[str]:
    wanted = host_ports(pod)
    if wanted and any(_ports_conflict(w, used) for w in wanted for used in info.ports):
        return [PORTS]
    return []


def filter_resources(pod: Obj, info: NodeInfo) -> list[str]:
    """Pods capacity, then every requested resource against allocatable minus what the node's pods request."""
    reasons = []
    if "pods" in info.allocatable and len(info.pods) + 1 > info.allocatable["pods"]:
        reasons.append(TOO_MANY_PODS)
    for name, amount in sorted(pod_requests(pod).items(), key=lambda kv: (kv[0] not in ("cpu", "memory"), kv[0])):
        if amount > 0 and amount > info.allocatable.get(name, 0) - info.requested.get(name, 0):
            reasons.append(f"Insufficient {name}")
    return reasons


FILTERS: list[Callable[[Obj, NodeInfo], list[str]]] = [
    filter_unschedulable, filter_taints, filter_node_affinity, filter_ports, filter_resources]


def filter_node(pod: Obj, info: NodeInfo) -> list[str]:
    """The reasons of the first filter that refuses the node ([] if the pod fits)."""
    for check in FILTERS:
        reasons = check(pod, info)
        if reasons:
            return reasons
    return []


# -- scores: integers 0..100 per node, higher is better -------------------------------------------------------

def score_least_allocated(pod: Obj, info: NodeInfo) -> int:
    """The share of cpu and memory left free once the pod is on the node, averaged (NodeResourcesFit)."""
    cpu, memory = nonzero_requests(pod_requests(pod))
    scores = []
    for capacity, used in ((info.allocatable.get("cpu", 0), info.nonzero_cpu + cpu),
                           (info.allocatable.get("memory", 0), info.nonzero_memory + memory)):
        scores.append(0 if capacity <= 0 or used > capacity else (capacity - used) * MAX_SCORE // capacity)
    return sum(scores) // len(scores)


def score_spread(counts: dict[str, int]) -> dict[str, int]:
    """Fewer pods of the same controller on a node scores higher (SelectorSpread's formula)."""
    most = max(counts.values(), default=0)
    if most == 0:
        return {name: MAX_SCORE for name in counts}
    return {name: MAX_SCORE * (most - n) // most for name, n in counts.items()}


def preferred_affinity_weight(pod: Obj, node: Obj) -> int:
    """The summed weights of the preferred node affinity terms the node matches."""
    preferred = _node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution") or []
    return sum(int(p.get("weight") or 0) for p in preferred if term_matches(p.get("preference") or {}, node))


def intolerable_prefer_no_schedule(pod: Obj, node: Obj) -> int:
    return sum(1 for t in (node.get("spec") or {}).get("taints") or []
               if t.get("effect") == "PreferNoSchedule" and not _tolerated(pod, t))


def normalize(raw: dict[str, int], *, reverse: bool = False) -> dict[str, int]:
    """Scale to 0..MAX_SCORE by the highest value (reverse: the highest value scores 0), as upstream's helper."""
    most = max(raw.values(), default=0)
    if most == 0:
        return {name: (MAX_SCORE if reverse else 0) for name in raw}
    scaled = {name: v * MAX_SCORE // most for name, v in raw.items()}
    return {name: MAX_SCORE - v for name, v in scaled.items()} if reverse else scaled


def score_nodes(pod: Obj, infos: list[NodeInfo]) -> dict[str, int]:
    """The weighted total of every score, per node name."""
    owner = owner_uid(pod)
    spread = score_spread({i.name: (i.owners.get(owner, 0) if owner else 0) for i in infos})
    affinity = normalize({i.name: preferred_affinity_weight(pod, i.node) for i in infos})
    taints = normalize({i.name: intolerable_prefer_no_schedule(pod, i.node) for i in infos}, reverse=True)
    return {i.name: score_least_allocated(pod, i) + 2 * spread[i.name] + 2 * affinity[i.name] + 3 * taints[i.name]
            for i in infos}


# -- one decision ----------------------------------------------------------------------------------------------

def schedule(pod: Obj, infos: Iterable[NodeInfo], rng: random.Random | None = None
             ) -> tuple[str | None, dict[str, list[str]]]:
    """The node the pod should go to (None if it fits nowhere) and, per refusing node, why not."""
    feasible: list[NodeInfo] = []
    refused: dict[str, list[str]] = {}
    for info in infos:
        reasons = filter_node(pod, info)
        if reasons:
            refused[info.name] = reasons
        else:
            feasible.append(info)
    if not feasible:
        return None, refused
    if len(feasible) == 1:
        return feasible[0].name, refused
    scores = score_nodes(pod, feasible)
    best = max(scores.values())
    return (rng or random).choice([name for name, s in scores.items() if s == best]), refused


def fit_error(nodes: int, refused: dict[str, list[str]]) -> str:
    """kube-scheduler's FitError: "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match ...".

    Each reason counted once per node that gave it, the "COUNT REASON" strings sorted."""
    if nodes == 0:
        return "no nodes available to schedule pods"
    counts = Counter(reason for reasons in refused.values() for reason in reasons)
    return f"0/{nodes} nodes are available: " + ", ".join(sorted(f"{n} {r}" for r, n in counts.items())) + "."


def node_changed_for_scheduling(old: Obj | None, new: Obj | None) -> bool:
    """Could the change let a waiting pod fit? (heartbeats and address changes do not)."""
    if old is None or new is None:
        return new is not None

    def facts(node: Obj) -> tuple:
        status = node.get("status") or {}
        return (status.get("allocatable"), node["metadata"].get("labels"), (node.get("spec") or {}).get("taints"),
                (node.get("spec") or {}).get("unschedulable"), condition_taints(node))
    return facts(old) != facts(new)
