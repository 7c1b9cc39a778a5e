"""`raftkube compose`: the same cluster as containers, for HA demos on any machine with Docker.

    raftkube compose --masters 5                  # writes docker-compose.yml and compose/haproxy.cfg
    raftkube compose --no-files --secrets compose/secrets   # only the secrets they use (and a kubeconfig)
    make compose-up                               # secrets if missing, images, `docker compose up -d --wait`

This module is the single generator of both files; the committed ones are its 3-master output (a test keeps
them in step). The containers, on one compose network with fixed addresses (SUBNET):

    haproxy  .2    the kube API on the host's 127.0.0.1:6443, to the masters that reach a quorum
    m1..m7   .11+  `raftkube master` as a non-root user; its KV API also on the host's 127.0.0.1:2379N (for
                   `raftkube status|chaos|demo --compose`), over TLS for clients with a certificate the KV CA
                   signed (secrets/etcd/operator.crt on the host); the Raft port needs the cluster secret
    n1, n2   .21+  `raftkube node`: kubelet (process runtime), kube-proxy and the host-gw pod network
                   (node/pod_network.py): pods of node nI get 10.244.I.0/24, routed between the nodes; each node
                   is its own user (system:node:nI, secret nI_token), as the masters' Node authorizer expects

Fixed addresses let `raftkube chaos heal --compose` reconnect a master with the address its listeners are bound
to, and put every name in every /etc/hosts (`x-names`): no lookup waits for Docker's DNS, none leaves the machine.
ClusterIPs come from 127.96.0.0/16, as with `raftkube up`: kube-proxy serves them on each node's loopback,
where that node's pods (processes in its container) connect. Images: BASE_IMAGE and HAPROXY_IMAGE below, or the
stand-ins compose/standin-image.sh makes where no registry can be reached (README, "The cluster in containers").
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os

from api.kubernetes_service import first_address
from api.node_authorizer import node_user
from raftkube import certs, kubeconfig, kv_pki, up

SECRETS = {"cluster_secret": "cluster.secret", "tokens": "tokens.csv", "server_crt": "server.crt",
           "server_key": "server.key", "ca_crt": "ca.crt", "encryption_config": "pki/encryption-config.yaml",
           "service_account_key": "pki/service-account.key", "kubelet_client_crt": "apiserver-kubelet-client.crt",
           "kubelet_client_key": "apiserver-kubelet-client.key"}
SECRETS_DIR = "compose/secrets"
NODES = ("n1", "n2")
KV_DIR = "etcd"  # the KV ports' CA and certificates (raftkube/kv_pki.py), under the secrets dir
KV_SECRETS = {"kv_ca_crt": f"{KV_DIR}/ca.crt", "kv_client_crt": f"{KV_DIR}/{kv_pki.APISERVER}.crt",
              "kv_client_key": f"{KV_DIR}/{kv_pki.APISERVER}.key"}
MAX_MASTERS = 7
SUBNET = "10.89.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"  # node nI's pods: 10.244.I.0/24
BASE_IMAGE = "${RAFTKUBE_BASE_IMAGE:-python:3.11-slim}"
HAPROXY_IMAGE = "${RAFTKUBE_HAPROXY_IMAGE:-haproxy:2.9}"
IMAGE = "raftkube:latest"
PROJECT = "raftkube"
NETWORK = "cluster"
API_PORT = 6443
HEALTH = ("import ssl,urllib.request as u;"
          "u.urlopen('https://{name}:6443/readyz',context=ssl._create_unverified_context(),timeout=2)")
# A node starts as root only to hand its own process one capability (routes for the pod network) and run as the
# image's user; the process clears it from what its children inherit (node/pod_network.py), so pods have none.
NODE_ENTRYPOINT = ["setpriv", "--reuid=raftkube", "--regid=raftkube", "--init-groups", "--inh-caps=+net_admin",
                   "--ambient-caps=+net_admin", "--bounding-set=-all,+net_admin", "--", "raftkube"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--masters", type=int, default=3, choices=[1, 3, 5, 7])
    p.add_argument("--output", default="docker-compose.yml")
    p.add_argument("--haproxy", default="compose/haproxy.cfg")
    p.add_argument("--files", action=argparse.BooleanOptionalAction, default=True,
                   help="write the compose file and haproxy.cfg (--no-files: only the secrets)")
    p.add_argument("--secrets", metavar="DIR", help="also make the secrets (kept out of git) and a kubeconfig here; "
                                                    "those already there are kept")


def kubelet_secrets(node: str) -> dict[str, str]:
    """Node `node`'s kubelet server's certificate and key."""
    return {f"kubelet_{node}_crt": f"kubelet-{node}.crt", f"kubelet_{node}_key": f"kubelet-{node}.key"}


def node_secrets(node: str) -> dict[str, str]:
    """What node `node`'s container gets, and no other: its own token (it is system:node:NAME), the CA certificate,
    and its kubelet's certificate and key."""
    return {f"{node}_token": f"{node}.token", "ca_crt": "ca.crt", **kubelet_secrets(node)}


def names(masters: int) -> list[str]:
    return [f"m{i + 1}" for i in range(masters)]


def address(service: str) -> str:
    """The fixed address of a service on the compose network: haproxy .2, master mI .(10+I), node nI .(20+I)."""
    net = ipaddress.ip_network(SUBNET)
    offset = 2 if service == "haproxy" else {"m": 10, "n": 20}[service[0]] + int(service[1:])
    return str(net.network_address + offset)


def kv_port(master: str) -> int:
    """The host port (on 127.0.0.1) that publishes master mI's KV API: 2379I."""
    return int(f"2379{master[1:]}")


def pod_cidr(node: str) -> str:
    return f"10.244.{node[1:]}.0/24"


def _q(value: str) -> str:
    return json.dumps(value)  # a JSON string is a YAML string


def _list(values: list[str]) -> str:
    return f"[{', '.join(_q(v) for v in values)}]"


def master_secrets(name: str) -> dict[str, str]:
    """Master NAME's own secrets (its KV certificate and key), by compose secret name -> file in the secrets dir."""
    crt, key = kv_pki.pair(KV_DIR, kv_pki.server_leaf(name))
    return {f"kv_{name}_crt": crt, f"kv_{name}_key": key}


def _mounted(key: str) -> str:
    return f"/run/secrets/{key}"


def master_command(name: str, masters: int) -> list[str]:
    peers = ",".join(f"{o}:7001" for o in names(masters) if o != name)
    kv_crt, kv_key = (_mounted(key) for key in master_secrets(name))
    return ["master", "--name", name, "--raft", f"{name}:7001", "--peers", peers,
            "--kv-listen", f"{name}:2379", "--api-listen", f"{name}:{API_PORT}", "--data-dir", "/data",
            "--secret-file", "/run/secrets/cluster_secret", "--token-file", "/run/secrets/tokens",
            "--tls-cert-file", "/run/secrets/server_crt", "--tls-private-key-file", "/run/secrets/server_key",
            "--ca-file", "/run/secrets/ca_crt", "--service-cluster-ip-range", up.SERVICE_IP_RANGE,
            "--encryption-provider-config", "/run/secrets/encryption_config",
            "--service-account-key-file", "/run/secrets/service_account_key", "--authorization-mode", up.AUTHORIZATION,
            "--kubernetes-service-port", str(up.KUBERNETES_SERVICE_PORT),
            "--kubelet-client-certificate", _mounted("kubelet_client_crt"),
            "--kubelet-client-key", _mounted("kubelet_client_key"),
            "--kubelet-certificate-authority", _mounted("ca_crt"),
            *kv_pki.server_flags((kv_crt, kv_key)),
            *kv_pki.shared_flags(_mounted("kv_ca_crt"), (_mounted("kv_client_crt"), _mounted("kv_client_key")))]


def node_command(name: str, masters: int) -> list[str]:
    cert, key = kubelet_secrets(name)
    return ["node", "--name", name, "--server", ",".join(f"https://{m}:{API_PORT}" for m in names(masters)),
            "--token-file", f"/run/secrets/{name}_token", "--ca-file", "/run/secrets/ca_crt",
            "--node-ip", address(name), "--kubelet-port", "10250", "--root-dir", "/var/lib/raftkube",
            "--pod-cidr", pod_cidr(name), "--pod-network", "host-gw", "--cluster-cidr", CLUSTER_CIDR,
            "--tls-cert-file", f"/run/secrets/{cert}", "--tls-private-key-file", f"/run/secrets/{key}"]


def _service(name: str, *, command: list[str], secrets: list[str], extra: list[str]) -> list[str]:
    """A raftkube container. Only m1 names the build (one image, built once): the others use the image it makes."""
    build = [f"    build: {{context: ., network: host, args: {{BASE_IMAGE: {_q(BASE_IMAGE)}}}, secrets: [pip_cert]}}"]
    return [f"  {name}:", *(build if name == "m1" else []),
            f"    image: {IMAGE}", f"    hostname: {name}", *extra, f"    command: {_list(command)}",
            *_network(name), f"    secrets: [{', '.join(secrets)}]"]


def _network(name: str) -> list[str]:
    return [f"    networks: {{{NETWORK}: {{ipv4_address: {address(name)}}}}}", "    <<: *names"]


def _names(masters: int) -> list[str]:
    """Every container's name in every /etc/hosts, and no DNS beyond: a name resolves at once, a stopped
    container's too (its connections fail fast instead of waiting out a lookup), and a lookup of anything else
    (a pod's reverse lookup of its own IP) fails within a second inside the container (the resolver is its own
    loopback), never asking a server outside the machine."""
    hosts = [f"{n}:{address(n)}" for n in ["haproxy", *names(masters), *NODES]]
    return ["x-names: &names", f"  extra_hosts: {_list(hosts)}", "  dns: [127.0.0.1]",
            "  dns_opt: [\"timeout:1\", \"attempts:1\"]"]


def compose_file(masters: int, haproxy_path: str = "compose/haproxy.cfg", secrets_dir: str = SECRETS_DIR) -> str:
    ms = names(masters)
    lines = [f"# Generated by `raftkube compose --masters {masters}`: change raftkube/compose.py, not this file.",
             "# `make compose-up` makes the secrets, builds the image and starts it (README: the cluster in containers).",
             f"name: {PROJECT}", *_names(masters), "services:"]
    for name in ms:
        lines += _service(name, command=master_command(name, masters),
                          secrets=[*SECRETS, *KV_SECRETS, *master_secrets(name)], extra=[])
        lines += [f"    ports: [{_q(f'127.0.0.1:{kv_port(name)}:2379')}]",
                  f"    volumes: [{_q(name + '-data:/data')}]",
                  f"    healthcheck: {{test: [\"CMD\", \"python3\", \"-c\", {_q(HEALTH.format(name=name))}], "
                  "interval: 2s, timeout: 3s, retries: 3}"]
    for name in NODES:
        lines += _service(name, command=node_command(name, masters), secrets=[*node_secrets(name)],
                          extra=["    user: root", "    cap_add: [NET_ADMIN]", f"    entrypoint: {_list(NODE_ENTRYPOINT)}"])
        lines += [f"    depends_on: {{{', '.join(f'{m}: {{condition: service_healthy}}' for m in ms)}}}"]
    lines += ["  haproxy:", f"    image: {_q(HAPROXY_IMAGE)}", "    user: haproxy",
              f"    entrypoint: {_list(['haproxy', '-W', '-db', '-f', '/usr/local/etc/haproxy/haproxy.cfg'])}",
              *_network("haproxy"),
              f"    ports: [{_q(f'127.0.0.1:{API_PORT}:{API_PORT}')}]",
              f"    volumes: [{_q('./' + haproxy_path + ':/usr/local/etc/haproxy/haproxy.cfg:ro')}]",
              f"    depends_on: [{', '.join(ms)}]",
              "networks:", f"  {NETWORK}: {{ipam: {{config: [{{subnet: {SUBNET}}}]}}}}", "secrets:"]
    lines += [f"  {key}: {{file: {_q('./' + secrets_dir + '/' + file)}}}"
              for key, file in _all_secrets(ms).items()]
    lines += ["  pip_cert: {file: \"${RAFTKUBE_PIP_CERT:-/dev/null}\"}  # a CA bundle pip must trust while building"]
    lines += ["volumes:"] + [f"  {name}-data: {{}}" for name in ms]
    return "\n".join(lines) + "\n"


def _all_secrets(masters: list[str]) -> dict[str, str]:
    """Every secret some container mounts: compose secret name -> file in the secrets dir."""
    return {**SECRETS, **KV_SECRETS, **{key: file for name in NODES for key, file in node_secrets(name).items()},
            **{key: file for name in masters for key, file in master_secrets(name).items()}}


def haproxy_config(masters: int) -> str:
    """Two backends over the same masters: `ready` checks /readyz (a quorum reached), `alive` checks /livez. With
    no master ready, clients still reach a live one and get its "no quorum" answer, never a paused master's
    silence. A connection that fails goes to another master (retries, redispatch)."""
    ms = names(masters)
    servers = [f"  server {n} {address(n)}:{API_PORT} check check-ssl verify none inter 1s fall 2 rise 1"
               for n in ms]
    return "\n".join([
        f"# Generated by `raftkube compose --masters {masters}`: the masters' fixed addresses (docker-compose.yml).",
        "global", "  maxconn 4096",
        "defaults", "  mode tcp", "  timeout connect 1s", "  timeout check 1s", "  timeout client 1h",
        "  timeout server 1h", "  retries 2", "  option redispatch",
        "frontend kube_api", f"  bind :{API_PORT}", "  use_backend ready if { nbsrv(ready) gt 0 }",
        "  default_backend alive",
        "backend ready  # masters that reach a quorum", "  option httpchk GET /readyz",
        "  http-check expect status 200", *servers,
        "backend alive  # no master reaches one: any that answers, so clients see the no-quorum answer",
        "  option httpchk GET /livez", "  http-check expect status 200", *servers,
    ]) + "\n"


def make_secrets(directory: str) -> None:
    """The same secret, token file, certificates and keys (Secrets' encryption, service account tokens, the masters'
    kubelet client) `up` makes (those present are kept), with every possible master's name in the certificate, so
    one set serves 1 to 7 masters; and each node's kubelet serving certificate, for its fixed address (the CA's key
    stays here, in no container). Compose mounts the files into the containers as they are, and the containers' user
    is not the host's: they are readable (0644) inside a folder only the owner can enter (0700)."""
    os.makedirs(os.path.join(directory, "pki"), mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    pki = certs.ensure(directory, names(MAX_MASTERS) + certs.service_names(first_address(up.SERVICE_IP_RANGE)))
    kv_pki.ensure(os.path.join(directory, KV_DIR),
                  {name: [name, address(name), *kv_pki.LOCAL_NAMES] for name in names(MAX_MASTERS)})
    up.ensure_secret(directory)
    up.ensure_encryption_config(directory)
    up.ensure_service_account_key(directory)
    up.ensure_tokens(directory)
    up.ensure_node_tokens(directory, list(NODES))
    for node in NODES:
        with open(os.open(os.path.join(directory, f"{node}.token"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                  "w") as f:
            f.write(up.token_for(directory, node_user(node)))
        cert, key = (os.path.join(directory, file) for file in kubelet_secrets(node).values())
        if not (os.path.exists(cert) and os.path.exists(key)) or os.path.getmtime(cert) < os.path.getmtime(
                pki["ca.crt"]):  # missing, or signed by a CA made again since
            certs.kubelet_serving(directory, [node], address(node), cert, key)
    for file in _all_secrets(names(MAX_MASTERS)).values():
        os.chmod(os.path.join(directory, file), 0o644)
    kubeconfig.write(os.path.join(directory, "kubeconfig"), f"https://127.0.0.1:{API_PORT}", up.admin_token(directory),
                     pki["ca.crt"])


def run(args: argparse.Namespace) -> int:
    if args.files:
        with open(args.output, "w") as f:
            f.write(compose_file(args.masters, args.haproxy))
        os.makedirs(os.path.dirname(args.haproxy) or ".", exist_ok=True)
        with open(args.haproxy, "w") as f:
            f.write(haproxy_config(args.masters))
        print(f"wrote {args.output} and {args.haproxy} for {args.masters} masters")
    if args.secrets:
        make_secrets(args.secrets)
        print(f"the secrets are in {args.secrets}; then: make compose-up (or docker compose up -d --wait) and "
              f"KUBECONFIG={args.secrets}/kubeconfig kubectl get nodes")
    elif not args.files:
        raise SystemExit("raftkube compose --no-files: nothing to do; add --secrets DIR")
    return 0
