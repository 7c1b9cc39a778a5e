"""The kube API's token file as `raftkube up` keeps it: a token per user, nodes added as they come, none lost when
several processes add theirs at once, and the `kubernetes` Service's Endpoints from the masters' addresses."""
import csv
import threading

from api.authentication import parse_tokens
from api.kubernetes_service import first_address, subsets
from raftkube import up


def test_each_node_gets_a_token_of_its_own_and_the_others_keep_theirs(tmp_path):
    up.ensure_tokens(str(tmp_path))
    admin = up.admin_token(str(tmp_path))
    up.ensure_node_tokens(str(tmp_path), ["n1", "n2"])
    up.ensure_node_tokens(str(tmp_path), ["n2", "n3"])
    users = {u.name: u for u in parse_tokens(str(tmp_path / "tokens.csv")).values()}
    assert set(users) == {"admin", "system:kube-controller-manager", "system:kube-scheduler",
                          "system:node:n1", "system:node:n2", "system:node:n3"}
    assert "system:nodes" in users["system:node:n2"].groups and "system:masters" in users["admin"].groups
    assert up.admin_token(str(tmp_path)) == admin
    assert len({up.token_for(str(tmp_path), f"system:node:{n}") for n in ("n1", "n2", "n3")}) == 3
    assert oct((tmp_path / "tokens.csv").stat().st_mode & 0o777) == "0o600"


def test_nodes_starting_at_once_all_keep_their_token(tmp_path):
    up.ensure_tokens(str(tmp_path))
    threads = [threading.Thread(target=up.ensure_node_tokens, args=(str(tmp_path), [f"n{i}"])) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open(tmp_path / "tokens.csv", newline="") as f:
        named = [row[1] for row in csv.reader(f)]
    assert sorted(n for n in named if n.startswith("system:node:")) == sorted(f"system:node:n{i}" for i in range(20))


def test_the_kubernetes_service_takes_the_first_address_and_a_subset_per_port():
    assert first_address("127.96.0.0/16") == "127.96.0.1" and first_address("10.96.0.0/12") == "10.96.0.1"
    assert subsets([("127.0.0.1", 7002), ("127.0.0.1", 7001), ("10.0.0.2", 7001)]) == [
        {"addresses": [{"ip": "10.0.0.2"}, {"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": 7001,
                                                                         "protocol": "TCP"}]},
        {"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": 7002, "protocol": "TCP"}]}]
