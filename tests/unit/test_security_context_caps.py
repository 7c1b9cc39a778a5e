"""The one capability a sandboxed container keeps (NET_BIND_SERVICE), unless it drops it."""
import pytest

from node import security_context
from node.runtime import ContainerError


def caps(container_ctx: dict) -> tuple[int, ...]:
    container = {"name": "c", "securityContext": container_ctx}
    return security_context.identity({"spec": {}}, container, default_uid=65534, default_gid=65534).capabilities


def test_net_bind_service_is_kept_by_default_and_goes_when_dropped():
    assert caps({}) == (security_context.CAP_NET_BIND_SERVICE,)
    assert caps({"capabilities": {"add": ["SYS_ADMIN"]}}) == (security_context.CAP_NET_BIND_SERVICE,)
    assert caps({"capabilities": {"drop": ["ALL"]}}) == ()
    assert caps({"capabilities": {"drop": ["CAP_NET_BIND_SERVICE"]}}) == ()


def test_a_drop_that_is_not_a_list_is_refused():
    with pytest.raises(ContainerError):
        caps({"capabilities": {"drop": "ALL"}})
