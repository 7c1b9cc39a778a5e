"""Protobuf bodies exactly as kubectl 1.32 sends them (captured from `kubectl create configmap` and
`kubectl create deployment` against a recording server), read as the JSON objects they stand for."""
import pytest

from api import protobuf

CONFIGMAP = bytes.fromhex("6b3873000a0f0a0276311209436f6e6669674d6170121b0a110a016312001a0022002a0032003800420012060a016b1201761a002200")  # kubectl create configmap c --from-literal=k=v
DEPLOYMENT = bytes.fromhex(
    "6b3873000a150a07617070732f7631120a4465706c6f796d656e7412b8010a1f0a0377656212001a0022002a003200380042005a0a0a0361707012037765621286010803120c0a0a0a0361707012037765621a6c0a1c0a0012001a0022002a003200380042005a0a0a036170701203776562124c122e0a056e67696e7812056e67696e782a00320a0a001000185022002a0042006a007200800100880100900100a201001a00320042004a0052005800600068008201008a01009a0100c2010022020a00280038001a0c0800100018002000280038001a002200")  # kubectl create deployment web --image=nginx --replicas=3 --port=80


def test_a_configmap_from_kubectl():
    assert protobuf.decode(CONFIGMAP) == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                                          "data": {"k": "v"}}


def test_a_deployment_from_kubectl_keeps_what_json_would_say():
    d = protobuf.decode(DEPLOYMENT)
    assert d["kind"] == "Deployment" and d["apiVersion"] == "apps/v1"
    assert d["metadata"] == {"name": "web", "labels": {"app": "web"}}
    spec = d["spec"]
    assert spec["replicas"] == 3 and spec["selector"] == {"matchLabels": {"app": "web"}}
    container = spec["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx" and container["ports"] == [{"containerPort": 80}]
    assert "hostNetwork" not in spec["template"]["spec"]  # unset fields Go wrote as zeros are left out


def test_a_field_with_data_that_we_do_not_know_is_refused_not_dropped():
    type_meta = bytes.fromhex("0a0f0a0276311209436f6e6669674d6170")  # typeMeta: v1 ConfigMap
    raw = bytes([0xA8, 0x06, 0x01])  # field 101, varint 1: not in ConfigMap's schema
    body = protobuf.MAGIC + type_meta + bytes([0x12, len(raw)]) + raw
    with pytest.raises(protobuf.ProtobufUnsupported, match="field 101 of ConfigMap"):
        protobuf.decode(body)


@pytest.mark.parametrize("junk", [b"", b"k8s\x00\xff", b"not protobuf", protobuf.MAGIC + bytes([0x0A, 0x80]),
                                  protobuf.MAGIC + bytes([0x0A, 0x02, 0x08, 0x01]),  # TypeMeta as a varint
                                  protobuf.MAGIC + bytes([0x0D, 1, 2])])  # a truncated 32-bit field
def test_garbage_is_refused_as_a_value_error(junk):
    """ProtobufUnsupported (a 415: send JSON) for what is not understood, ValueError (a 400) for what is broken:
    a field of the wrong wire type or cut short is never an AttributeError (a 500)."""
    with pytest.raises(ValueError):
        protobuf.decode(junk)
