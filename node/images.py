"""What an image-only container runs, since no image is pulled here: the process runtime runs `command` and `args`
on the node's own binaries. A container with neither runs a stand-in for a few well-known images, so the usual
first steps of a tutorial work (`kubectl create deployment web --image=nginx`, then `kubectl expose` and curl):

    nginx, httpd (any tag or registry)   an HTTP server on each TCP containerPort (80 when none is declared) at
                                         the pod's IP, answering every GET with nginx's welcome page
    anything else                        an idle `sleep infinity`, so the pod runs and `kubectl exec` works

A command the image would provide but the node may lack is the node's equivalent: `python` in a python image is
`python3` when the node's system directories have no `python` (Debian without python-is-python3).

Port 80 needs root (or CAP_NET_BIND_SERVICE); as a normal user, declare containerPort 8080. The server is the
node's own `python3` found on the container's PATH (standard library only): on a root node a container sees the
node's /usr and /bin but not this project's virtual environment."""
from __future__ import annotations

import shutil
from typing import Any

Obj = dict[str, Any]
WEB_SERVERS = ("nginx", "httpd")
PROVIDED = {"python": {"python": "python3"}}  # image -> {command it has: the node's equivalent}
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # an image's usual PATH (Docker's default)
WELCOME = ("<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body><h1>Welcome to nginx!</h1>"
           "<p>If you see this page, the web server is running (a stand-in: raftkube's process runtime pulls no "
           "image).</p></body></html>")
# One thread per port; every GET and HEAD answered with the page, each request logged to stdout as a web server's.
_SERVER = """
import http.server, os, sys, threading
page = sys.argv[1].encode()
class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page))); self.end_headers(); self.wfile.write(page)
    do_HEAD = do_GET
    def log_message(self, fmt, *args):
        print(self.address_string(), "-", fmt % args, flush=True)
servers = [http.server.ThreadingHTTPServer((os.environ.get("POD_IP", "127.0.0.1"), int(p)), Page) for p in sys.argv[2:]]
print("serving on port(s)", ", ".join(sys.argv[2:]), flush=True)
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()
"""


def image_name(image: str) -> str:
    """The bare name of an image reference: docker.io/library/nginx:1.25@sha256:... -> nginx."""
    return image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0]


def stand_in(container: Obj) -> list[str]:
    """The command line an image-only container runs."""
    if image_name(str(container.get("image") or "")) in WEB_SERVERS:
        ports = [str(p["containerPort"]) for p in container.get("ports") or []
                 if isinstance(p, dict) and (p.get("protocol") or "TCP") == "TCP" and p.get("containerPort")]
        return ["python3", "-c", _SERVER, WELCOME, *(ports or ["80"])]
    return ["sleep", "infinity"]


def provided(container: Obj, argv: list[str]) -> list[str]:
    """`argv` with its command swapped for the node's equivalent when the image has it and the node does not."""
    aliases = PROVIDED.get(image_name(str(container.get("image") or "")), {})
    if argv and argv[0] in aliases and shutil.which(argv[0], path=IMAGE_PATH) is None:
        return [aliases[argv[0]], *argv[1:]]
    return argv
