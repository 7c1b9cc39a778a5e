"""python-etcd3 (the `etcd3` module of the etcd3-fc package), the Python etcd3 client, run in a process of its own:
it registers etcd's .proto files in protobuf's default pool under the same file names as aetcd does (whose protos
tests/unit/test_etcdpb.py compares ours with), and one pool cannot hold both.

    got = run('''
        client = connect(args["endpoint"], args["tls"])
        client.put("k", "v")
        result = client.get("k")[0].decode()
    ''', endpoint=cluster.master("m1")["grpc"], tls=cluster.kv_files)

The script sees `args` (the keywords, through JSON), `connect(endpoint, tls)` (tls: {"ca", "cert", "key"}, any of
them left out to go without) and `etcd3`; what it leaves in `result` comes back, through JSON.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

PRELUDE = '''
import json, sys
import etcd3

args = json.loads(sys.argv[1])


def connect(endpoint, tls):
    host, port = endpoint.split("://", 1)[1].rsplit(":", 1)
    return etcd3.client(host=host, port=int(port), timeout=10, ca_cert=tls.get("ca"), cert_key=tls.get("key"),
                        cert_cert=tls.get("cert"))

'''


def run(script: str, **args: Any) -> Any:
    out = subprocess.run([sys.executable, "-c", f"{PRELUDE}{textwrap.dedent(script)}\nprint(json.dumps(result))\n",
                          json.dumps(args)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.splitlines()[-1])
