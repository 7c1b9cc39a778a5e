"""Reading the KV API's request bodies: what is not JSON is a BadRequest (a 400), never an exception that is a 500."""
import pytest

from kvstore.gateway_codec import BadRequest, json_stream


@pytest.mark.parametrize("raw", [b"\x80\xff", b"[" * 100_000 + b"]" * 100_000, b'{"a": ', b"{}{"])
def test_a_streaming_body_that_is_not_json_is_a_bad_request(raw):
    with pytest.raises(BadRequest):
        json_stream(raw)


def test_a_streaming_body_holds_as_many_objects_as_it_has():
    assert json_stream(b' {"a": 1}\n{"b": 2} ') == [{"a": 1}, {"b": 2}]
