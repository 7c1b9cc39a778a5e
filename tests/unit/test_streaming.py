"""The pure parts of exec, attach, port-forward, logs and top: channel framing (node/wsstream.py, node/channels.py),
the ports of a channel port-forward, SPDY/3.1 framing (node/spdy.py), CRI log lines (node/log_format.py), CPU rates
(node/stats.py) and metrics.k8s.io objects (api/resource_metrics.py)."""
import json
import zlib

import pytest
from multidict import MultiDict

from api import resource_metrics
from node import channels, log_format, port_forward_channels, spdy, stats, wsstream
from node.spdy import SpdyError
from node.wsstream import Message, ProtocolError

# -- channels -------------------------------------------------------------------------------


def test_a_message_is_its_channel_byte_then_the_data():
    assert wsstream.V5.encode(channels.STDOUT, b"hi\n") == b"\x01hi\n"
    assert wsstream.V5.decode(b"\x00ls\n") == Message(channels.STDIN, b"ls\n")
    assert wsstream.V4.decode("\x00ls\n") == Message(channels.STDIN, b"ls\n")  # a text message, as Python sends
    assert wsstream.PROTOCOLS[wsstream.NONE] == wsstream.CHANNEL


def test_base64_protocols_name_the_channel_with_a_digit():
    assert wsstream.V4_BASE64.encode(channels.STDOUT, b"total 8\n") == "1dG90YWwgOAo="
    assert wsstream.BASE64.decode("0Zm9vCgo=") == Message(channels.STDIN, b"foo\n\n")
    assert wsstream.BASE64.decode(b"5") == Message(5, b"")
    for bad, says in (("0not base64!", "carries base64"), ("/Zm9v", "character from '0'"), ("", "empty")):
        with pytest.raises(ProtocolError, match=says):
            wsstream.BASE64.decode(bad)


def test_a_client_writes_only_stdin_resize_and_close():
    for bad, says in ((b"\x01x", "stdout channel"), (b"\x03{}", "error channel"), (b"\x07x", "unknown channel 7"),
                      (b"\xff\x09", "close message names")):
        with pytest.raises(ProtocolError, match=says):
            channels.check(wsstream.V5.decode(bad), wsstream.V5)
    assert channels.check(Message(channels.CLOSE, b"\x00"), wsstream.V5).channel == channels.CLOSE
    with pytest.raises(ProtocolError, match="close channel"):  # v4 has no close signal
        channels.check(Message(channels.CLOSE, b"\x00"), wsstream.V4)


def test_resize_is_json_width_and_height():
    assert channels.parse_resize(b'{"Width":120,"Height":40}') == (120, 40)
    for bad in (b"80x24", b'{"Width":80}', b'{"Width":-1,"Height":2}', b'{"Width":"80","Height":24}'):
        with pytest.raises(ProtocolError):
            channels.parse_resize(bad)


def test_the_error_channel_carries_the_exit_code_as_kubectl_reads_it():
    """v4's errorDecoder: Failure, reason NonZeroExitCode, a cause of type ExitCode whose message is the code."""
    status = json.loads(channels.status_message(channels.exit_status(3, ["sh", "-c", "exit 3"]), wsstream.V4))
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    assert json.loads(channels.status_message(channels.exit_status(0, ["true"]), wsstream.V5))["status"] == "Success"


def test_before_v4_the_error_channel_carries_a_failures_message_only():
    assert channels.status_message(channels.success(), wsstream.CHANNEL) is None
    failed = channels.status_message(channels.exit_status(3, ["false"]), wsstream.BASE64)
    assert failed.startswith(b"command terminated with non-zero exit code")


def test_stream_options_from_kubectls_query():
    q = MultiDict([("command", "sh"), ("command", "-c"), ("command", "exit 3"), ("stdout", "true"), ("stdin", "1")])
    opts = channels.stream_options(q, exec_=True)
    assert opts.command == ("sh", "-c", "exit 3") and opts.stdin and opts.stdout and not opts.stderr
    for query, says in (([("stdout", "true")], "at least 1 command"), ([("command", "ls")], "at least one of"),
                        ([("command", "ls"), ("tty", "true"), ("stderr", "true")], "tty or for stderr")):
        with pytest.raises(ValueError, match=says):
            channels.stream_options(MultiDict(query), exec_=True)
    assert channels.stream_options(MultiDict([("stdout", "true")]), exec_=False).command == ()


def test_the_ports_of_a_channel_port_forward():
    """Comma-separated or repeated, as the API server reads PodPortForwardOptions; two channels a port."""
    assert port_forward_channels.parse_ports(MultiDict([("ports", "1234,1235"), ("ports", "80")])) == [1234, 1235, 80]
    for value in ("0", "65536", "http", "12,", "١٢"):
        with pytest.raises(ValueError, match="is not a port number"):
            port_forward_channels.parse_ports(MultiDict([("ports", value)]))
    with pytest.raises(ValueError, match="ports is required"):
        port_forward_channels.check_ports([], wsstream.V4)
    port_forward_channels.check_ports(list(range(1, 128)), wsstream.V4)
    with pytest.raises(ValueError, match="at most 40 ports"):
        port_forward_channels.check_ports(list(range(1, 42)), wsstream.V4_BASE64)

# -- SPDY -----------------------------------------------------------------------------------


def test_the_dictionary_is_the_specifications():
    """1,423 bytes, the zlib dictionary of SPDY/3 (what Go's spdystream uses), checked by its CRC."""
    assert len(spdy.DICTIONARY) == 1423 and zlib.crc32(spdy.DICTIONARY) == 80234766


def test_frames_round_trip_whatever_the_cuts():
    """A frame may arrive in pieces, or several in one message: the decoder keeps what it has not used."""
    client = spdy.Encoder()
    wire = (client.syn_stream(1, {"streamType": ["error"], "port": ["80"], "requestID": ["0"]}) +
            client.syn_stream(3, {"streamType": ["data"], "port": ["80"], "requestID": ["0"]}) +
            spdy.data(3, b"GET / HTTP/1.0\r\n\r\n", fin=True) + spdy.ping(5) + spdy.rst_stream(3, spdy.CANCEL) +
            spdy.goaway(3, spdy.GOAWAY_OK))
    for size in (1, 7, len(wire)):
        decoder = spdy.Decoder()
        frames = [f for i in range(0, len(wire), size) for f in decoder.feed(wire[i:i + size])]
        assert [f.kind for f in frames] == [spdy.SYN_STREAM, spdy.SYN_STREAM, spdy.DATA, spdy.PING, spdy.RST_STREAM,
                                            spdy.GOAWAY]
        assert frames[0].headers == {"streamtype": ["error"], "port": ["80"], "requestid": ["0"]}
        assert frames[2].data.startswith(b"GET") and frames[2].fin and frames[3].value == 5
        assert frames[4].value == spdy.CANCEL and frames[5].stream_id == 3


def test_a_reply_decodes_with_the_sessions_zlib_stream():
    server, decoder = spdy.Encoder(), spdy.Decoder()
    replies = server.syn_reply(1) + server.syn_reply(3, {"x": ["a", "b"]})
    assert [(f.stream_id, f.headers) for f in decoder.feed(replies)] == [(1, {}), (3, {"x": ["a", "b"]})]


def test_malformed_frames_are_errors_not_crashes():
    control = spdy.Encoder().syn_reply(1)
    bad = [control[:1] + b"\x02" + control[2:],  # version 2
           b"\x80\x03\x00\x63\x00\x00\x00\x00",  # unknown type 99
           b"\x80\x03\x00\x06\x00\x00\x00\x02\x00\x01",  # a PING that is too short
           b"\x00\x00\x00\x00\x00\x00\x00\x00",  # DATA on stream 0
           b"\x00\x00\x00\x01\x00\xff\xff\xff",  # 16 MiB announced
           b"\x80\x03\x00\x02\x00\x00\x00\x08\x00\x00\x00\x01garbage!"]  # a header block that is not zlib
    for frame in bad:
        with pytest.raises(SpdyError):
            spdy.Decoder().feed(frame)

# -- log lines ------------------------------------------------------------------------------


T0 = log_format.parse_time("2026-12-06T21:58:52.123456789Z")


def test_times_are_rfc3339_with_nanoseconds():
    assert log_format.stamp(T0) == "2026-12-06T21:58:52.123456789Z"
    assert log_format.parse_time("2026-12-06T22:58:52.123456789+01:00") == T0
    assert log_format.parse_time("2026-12-06T21:58:52Z") == T0 - 123456789
    with pytest.raises(ValueError):
        log_format.parse_time("yesterday")


def test_an_entry_round_trips_and_a_foreign_line_is_kept_whole():
    line = log_format.encode("stderr", b"oops: a b c", T0)
    assert line == b"2026-12-06T21:58:52.123456789Z stderr F oops: a b c\n"
    assert log_format.parse(line) == log_format.Entry(T0, "stderr", b"oops: a b c\n")
    assert log_format.parse(b"plain text\n") == log_format.Entry(0, "stdout", b"plain text\n")
    assert log_format.parse_all(line + b"2026-12-06T21:58:52Z stdout F half") == [log_format.parse(line)]


def test_tail_since_and_timestamps_as_the_kubelet_applies_them():
    entries = [log_format.Entry(T0 + i, "stdout", f"line {i}\n".encode()) for i in range(5)]
    long = [log_format.Entry(T0 + 9, "stdout", b"very ", partial=True), log_format.Entry(T0 + 10, "stdout", b"long\n")]
    assert log_format.render(log_format.select(entries, tail_lines=2)) == b"line 3\nline 4\n"
    assert log_format.select(entries + long, tail_lines=1) == long  # one line, two entries
    assert log_format.select(entries, since_ns=T0 + 3) == entries[3:]
    assert log_format.select(entries, tail_lines=0) == []
    stamped = log_format.render(entries[:1] + long, timestamps=True).decode().splitlines()
    assert stamped == ["2026-12-06T21:58:52.123456789Z line 0", "2026-12-06T21:58:52.123456798Z very long"]
    assert log_format.render(long[1:], timestamps=True, continuing=True) == b"long\n"

# -- CPU and memory -------------------------------------------------------------------------


def test_proc_stat_fields_are_counted_after_the_command_name():
    """The command name may hold spaces and parentheses; session is field 6, utime 14, stime 15, rss 24."""
    fields = ["S", "1", "42", "42"] + ["0"] * 7 + [str(3 * stats.TICKS), str(stats.TICKS)] + ["0"] * 8 + ["256"]
    sid, usage = stats.parse_stat(f"4242 (my (odd) name) {' '.join(fields)} 0 0")
    assert sid == 42 and usage == stats.Usage(4.0, 256 * stats.PAGE)


def test_the_cpu_rate_is_the_difference_over_the_time_between():
    before, after = stats.Sample(100.0, stats.Usage(1.0, 0)), stats.Sample(105.0, stats.Usage(1.5, 0))
    assert stats.nanocores(before, after) == 100_000_000  # 0.5 s of CPU in 5 s: a tenth of a core
    restarted = stats.Sample(110.0, stats.Usage(0.1, 0))
    assert stats.nanocores(after, restarted) == 0 and stats.nanocores(after, after) == 0


def test_a_session_without_its_shim():
    table = stats.ProcTable(0.0, {7: {7: stats.Usage(0.1, 9000), 8: stats.Usage(2.0, 1000), 9: stats.Usage(1.0, 24)}})
    assert table.session(7, without=(7,)) == stats.Usage(3.0, 1024) and table.session(8) is None


def test_summary_and_metrics_as_kubectl_top_reads_them():
    pod = {"metadata": {"name": "web", "namespace": "shop", "uid": "u1", "labels": {"app": "web"}}}
    pair = (stats.Sample(100.0, stats.Usage(1.0, 2 << 20)), stats.Sample(102.0, stats.Usage(1.2, 3 << 20)))
    summary = stats.summary("n1", [(pod["metadata"], {"app": pair}), ({"name": "new", "namespace": "shop",
                                                                         "uid": "u2"}, {})], None)
    assert summary["node"]["cpu"]["usageNanoCores"] == 100_000_000 and summary["window"] == 2.0
    assert [p["podRef"]["name"] for p in summary["pods"]] == ["web"]
    metrics = resource_metrics.pod_metrics(pod, summary)
    assert metrics["window"] == "2s" and metrics["metadata"]["labels"] == {"app": "web"}
    assert metrics["containers"] == [{"name": "app", "usage": {"cpu": "100000000n", "memory": "3072Ki"}}]
    assert resource_metrics.pod_metrics({"metadata": {"name": "new", "uid": "u2"}}, summary) is None
    node = resource_metrics.node_metrics({"metadata": {"name": "n1"}}, summary)
    assert node["usage"] == {"cpu": "100000000n", "memory": "3072Ki"}

# -- authorization --------------------------------------------------------------------------


def test_streams_are_authorized_as_create_whatever_the_method():
    """A WebSocket is a GET and SPDY a POST: both are `create` on pods/exec (and attach, portforward), as upstream;
    pods/log stays a `get`, and metrics.k8s.io is read like any resource."""
    from aiohttp.test_utils import make_mocked_request

    from api.authentication import User
    from api.authorization import attributes
    from api.paths import parse_path

    user = User("ada", groups=("devs",))
    for method in ("GET", "POST"):
        for sub in ("exec", "attach", "portforward"):
            a = attributes(make_mocked_request(method, f"/api/v1/namespaces/shop/pods/web/{sub}?command=ls"), user,
                           parse_path)
            assert (a.verb, a.resource, a.subresource, a.name) == ("create", "pods", sub, "web")
    log = attributes(make_mocked_request("GET", "/api/v1/namespaces/shop/pods/web/log"), user, parse_path)
    assert (log.verb, log.subresource) == ("get", "log")
    top = attributes(make_mocked_request("GET", "/apis/metrics.k8s.io/v1beta1/namespaces/shop/pods"), user, parse_path)
    assert (top.verb, top.api_group, top.resource) == ("list", "metrics.k8s.io", "pods")
