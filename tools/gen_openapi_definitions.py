"""Write api/openapi_definitions.json: Kubernetes 1.32's own type definitions for what raftkube serves.

    python tools/gen_openapi_definitions.py           # regenerate
    python tools/gen_openapi_definitions.py --check   # exit 1 if the committed file differs (make test runs it)

The source is Kubernetes' OpenAPI definitions as JSON Schema, as the kubernetes-validate package ships them
(`kubernetes-json-schema/v1.32.0-local/_definitions.json`: types, formats, required fields, descriptions, and the
x-kubernetes-* extensions that say how lists merge). kubectl 1.32 is the client raftkube answers as, so 1.32's
definitions are the ones it serves. Only the definitions reachable from ROOTS are kept (the kinds served, the
bodies of their subresources and options), one per line, sorted, so a change reads well in a diff.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from importlib import resources
from typing import Any

from api import schema_refs

KUBERNETES = "v1.32.0"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "api", "openapi_definitions.json")
CORE, APPS, META = "io.k8s.api.core.v1.", "io.k8s.api.apps.v1.", "io.k8s.apimachinery.pkg.apis.meta.v1."
ROOTS = [
    *(CORE + k for k in ("Namespace", "Node", "Pod", "Service", "Endpoints", "ConfigMap", "Secret", "Event",
                         "ServiceAccount", "Binding", "ReplicationController")),
    *(APPS + k for k in ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "ControllerRevision")),
    "io.k8s.api.batch.v1.Job", "io.k8s.api.coordination.v1.Lease", "io.k8s.api.autoscaling.v1.Scale",
    "io.k8s.api.policy.v1.Eviction", "io.k8s.api.policy.v1.PodDisruptionBudget",
    *("io.k8s.api.rbac.v1." + k for k in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")),
    "io.k8s.api.authentication.v1.TokenRequest", "io.k8s.api.authentication.v1.SelfSubjectReview",
    "io.k8s.api.authorization.v1.SelfSubjectAccessReview", "io.k8s.api.authorization.v1.SubjectAccessReview",
    "io.k8s.api.authorization.v1.SelfSubjectRulesReview",
    "io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIService",
    META + "DeleteOptions", META + "Status",
]


def source() -> dict[str, Any]:
    try:
        root = resources.files("kubernetes_validate")
    except ModuleNotFoundError:
        sys.exit("tools/gen_openapi_definitions.py needs kubernetes-validate: pip install -e '.[test]'")
    path = root / "kubernetes-json-schema" / f"{KUBERNETES}-local" / "_definitions.json"
    return json.loads(path.read_text())["$defs"]


def closure(defs: dict[str, Any]) -> dict[str, Any]:
    return schema_refs.closure(ROOTS, defs)


def render(defs: dict[str, Any]) -> str:
    lines = [f"{json.dumps(name)}: {json.dumps(d, sort_keys=True, separators=(',', ':'))}"
             for name, d in sorted(defs.items())]
    return ('{"kubernetes": "%s",\n"definitions": {\n' % KUBERNETES) + ",\n".join(lines) + "\n}}\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="compare with the committed file instead of writing it")
    args = p.parse_args()
    text = render(closure(source()))
    if args.check:
        with open(OUT) as f:
            if f.read() != text:
                print(f"{OUT} is not what tools/gen_openapi_definitions.py makes: run it", file=sys.stderr)
                return 1
        return 0
    with open(OUT, "w") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
