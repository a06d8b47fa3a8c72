#!/usr/bin/python3
"""fake-arl: a small Kubernetes API server for the ARL-Infra kinds (WarmPool, Sandbox,
Task in arl.infra.io/v1alpha1) plus a simulated operator, for arl-batch's tests.

Start it, read the first line of its stdout (its URL, printed once it accepts
connections), point the client at the kubeconfig it wrote, kill it when done.
Run with --help for every option; README.md beside this file has the details.
"""

import argparse
import base64
import ipaddress
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from api import FakeApi, Server          # noqa: E402
import pod_container                     # noqa: E402
from arl_operator import Operator        # noqa: E402
from faults import Faults, __doc__ as FAULTS_DOC   # noqa: E402
from schema import load_crds             # noqa: E402
from store import Store, now_rfc3339     # noqa: E402

# A copy of ../shared/arl-crds (see crds/PROVENANCE.md), so the tests need nothing beside the repo.
DEFAULT_CRD_DIR = os.path.join(HERE, "crds")

EPILOG = """\
control endpoints (no auth needed; not part of the Kubernetes API, never faulted or logged):
  GET    /_fake/state            objects per kind (name, phase/state, labels), pods with
                                 their directories, counts, current fault spec, the last
                                 outage (down: since, until, pending)
  GET    /_fake/requests[?since=N]  the request log as JSON lines (seq, time, method, path,
                                 query, verb, resource, namespace, name, watch, status,
                                 fault, duration_ms, userAgent, contentType for writes);
                                 status 0 = connection reset
  DELETE /_fake/requests         forget the log so far (seq keeps counting)
  GET    /_fake/faults           the fault spec in force
  POST   /_fake/faults           body: a new SPEC (text, or JSON {"spec": ...}); "" clears
  POST   /_fake/down?seconds=N   for N seconds reset every connection (and cut watches)
                                 (each reset request is logged: status 0, fault "down");
                                 a body is a fault SPEC installed when the outage begins;
                                 &after=K: it begins at the create that follows the next K
                                 creates (that create is the first one reset);
                                 &resource=R: counting only the creates of R (e.g. tasks)
  POST   /_fake/tokens           body: accepted bearer tokens, one per line (rotation)

fault SPEC (--faults and POST /_fake/faults):
""" + "\n".join("  " + l for l in FAULTS_DOC.split("\n\n", 1)[1].splitlines()) + """

authentication: with --token and/or --client-cert every request except /version,
/healthz, /livez, /readyz and /_fake/* needs a valid credential, else 401.
"""


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="server.py", description=__doc__.split("\n\n")[0], epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("server")
    g.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT",
                   help="address to bind (loopback only; port 0 = any free port) [%(default)s]")
    g.add_argument("--kubeconfig", metavar="PATH",
                   help="write a kubeconfig for this server to PATH (cluster/user/context 'fake-arl', "
                        "context namespace --namespace); written before the URL is printed")
    g.add_argument("--namespace", default="default", help="namespace of the kubeconfig context [%(default)s]")
    g.add_argument("--tls", action="store_true",
                   help="serve HTTPS with a CA and server certificate (SAN IP:127.0.0.1, DNS:localhost) "
                        "made with the openssl CLI at start; the CA goes into the kubeconfig as "
                        "certificate-authority-data")
    g.add_argument("--client-cert", action="store_true",
                   help="(with --tls) also issue a client certificate signed by the CA, put it in the "
                        "kubeconfig (client-certificate-data/client-key-data) and accept it as a credential")
    g.add_argument("--token", action="append", default=[], metavar="T",
                   help="require 'Authorization: Bearer T' (repeatable: any listed token is accepted; "
                        "the first goes into the kubeconfig)")
    g.add_argument("--no-kubeconfig-credentials", action="store_true",
                   help="leave token/client certificate out of the kubeconfig (to test exec plugins, "
                        "tokenFile etc.: the test writes its own user entry)")
    g.add_argument("--request-log", metavar="FILE", help="also append the request log to FILE (JSON lines)")
    g.add_argument("--history", type=int, default=1000, metavar="N",
                   help="events kept per resource for watches (the watch cache window); a watch from "
                        "an older resourceVersion gets 410 Expired [%(default)s]")
    g.add_argument("--bookmark-interval", type=float, default=1.0, metavar="S",
                   help="seconds between BOOKMARK events on watches that allow them [%(default)s]")
    g.add_argument("--crd-dir", default=os.environ.get("ARL_CRD_DIR", DEFAULT_CRD_DIR), metavar="DIR",
                   help="directory with arl.infra.io_*.yaml CRDs (read with PyYAML) [$ARL_CRD_DIR or %(default)s]")
    g.add_argument("--seed", type=int, default=1, help="seed for faults and generated names [%(default)s]")
    g.add_argument("--verbose", "-v", action="store_true", help="log requests and operator steps to stderr")

    g = p.add_argument_group("operator")
    g.add_argument("--pool", action="append", default=[], metavar="[NS/]NAME=REPLICAS",
                   help="create this WarmPool at start (the SDK's body: python:3.9-slim executor + "
                        "sidecar, /workspace); repeatable")
    g.add_argument("--pool-seed", action="append", default=[], metavar="[NS/]NAME=DIR",
                   help="fake-only: every new pod of pool NAME starts with a copy of DIR in /workspace "
                        "(stands in for content baked into the pool's image); repeatable")
    g.add_argument("--workdir", metavar="DIR",
                   help="where pod directories go (default: a temp dir, removed at exit)")
    g.add_argument("--keep-workdir", action="store_true", help="do not remove pod directories at exit")
    g.add_argument("--pod-delay", type=float, default=0.2, metavar="S",
                   help="a new pool pod becomes Running after S seconds [%(default)s]")
    g.add_argument("--sandbox-delay", type=float, default=0.05, metavar="S",
                   help="pause before each Sandbox step: finalizer, Pending, Bound, Ready [%(default)s]")
    g.add_argument("--task-delay", type=float, default=0.0, metavar="S",
                   help="pause before a Task whose Sandbox is Ready starts Running [%(default)s]")
    g.add_argument("--retry-interval", type=float, default=0.5, metavar="S",
                   help="Sandbox retry when its pool has no idle pod (real operator: 5) [%(default)s]")
    g.add_argument("--pending-interval", type=float, default=0.5, metavar="S",
                   help="Task recheck while its Sandbox is not Ready (real operator: 2) [%(default)s]")
    g.add_argument("--idle-timeout-default", type=int, default=3600, metavar="S",
                   help="SANDBOX_IDLE_TIMEOUT_SECONDS: idle limit when a Sandbox sets none [%(default)s]")
    g.add_argument("--grpc-timeout", type=float, default=30, metavar="S",
                   help="HTTP_CLIENT_TIMEOUT: the operator's deadline per step; a longer command ends "
                        "with exit 1 'DeadlineExceeded' and loses its output; 0 = none [%(default)s]")
    g.add_argument("--task-workers", type=int, default=4, metavar="N",
                   help="Tasks executed at once (the real operator: 1) [%(default)s]")
    g.add_argument("--no-bwrap", action="store_true",
                   help="run steps directly on the host (cwd mapped into the pod dir) instead of in "
                        "bubblewrap; /workspace paths in arguments then do not work")
    g.add_argument("--no-pod-container", action="store_true",
                   help="run each step in a bwrap of its own (the model before issue 14: no /tmp, "
                        "no writes outside the volumes, no background process shared across steps) "
                        "instead of exec'ing it into the pod's one persistent container")
    g.add_argument("--faults", default="", metavar="SPEC", help="fault injection, see below")
    a = p.parse_args(argv)
    host, _, port = a.listen.rpartition(":")
    try:
        if host == "localhost":
            host = "127.0.0.1"
        if not ipaddress.ip_address(host).is_loopback or ipaddress.ip_address(host).version != 4:
            raise ValueError
        a.host, a.port = host, int(port)
    except ValueError:
        p.error("--listen must be a loopback IPv4 HOST:PORT such as 127.0.0.1:0")
    if a.client_cert and not a.tls:
        p.error("--client-cert needs --tls")
    return a


def openssl(*args, cwd):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        raise SystemExit("fake-arl: openssl %s failed: %s" % (args[0], r.stderr.decode(errors="replace")))


def make_certs(d, client=False):
    """CA + server certificate (+ client certificate) with the openssl CLI, EC P-256."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "30",
            "-subj", "/CN=fake-arl-ca", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    with open(os.path.join(d, "server.ext"), "w") as fh:
        fh.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                 "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "30", "-extfile", "server.ext", cwd=d)
    if client:
        with open(os.path.join(d, "client.ext"), "w") as fh:
            fh.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                     "extendedKeyUsage=clientAuth\n")
        openssl("req", "-new", *ec, "-keyout", "client.key", "-out", "client.csr",
                "-subj", "/O=system:masters/CN=fake-arl-user", cwd=d)
        openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", "client.crt", "-days", "30", "-extfile", "client.ext", cwd=d)


def b64file(path):
    with open(path, "rb") as fh:
        return base64.b64encode(fh.read()).decode()


def write_kubeconfig(path, url, namespace, ca=None, token=None, client=None):
    """Block-style YAML written by hand (strings JSON-quoted, which YAML accepts)."""
    q = json.dumps
    lines = ["apiVersion: v1", "kind: Config", "clusters:", "- name: fake-arl", "  cluster:",
             "    server: %s" % q(url)]
    if ca:
        lines.append("    certificate-authority-data: %s" % q(ca))
    lines += ["contexts:", "- name: fake-arl", "  context:", "    cluster: fake-arl", "    user: fake-arl",
              "    namespace: %s" % q(namespace), "current-context: fake-arl", "preferences: {}", "users:",
              "- name: fake-arl"]
    user = []
    if token:
        user.append("    token: %s" % q(token))
    if client:
        user.append("    client-certificate-data: %s" % q(client[0]))
        user.append("    client-key-data: %s" % q(client[1]))
    lines += ["  user:"] + user if user else ["  user: {}"]
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def warmpool_body(ns, name, replicas):
    """What the SDK's WarmPoolManager.create_warmpool builds (docs/kubernetes.md)."""
    mounts = [{"name": "workspace", "mountPath": "/workspace"}]
    return {"apiVersion": "arl.infra.io/v1alpha1", "kind": "WarmPool",
            "metadata": {"name": name, "namespace": ns, "uid": "", "generation": 1},
            "spec": {"replicas": replicas, "template": {"spec": {
                "containers": [
                    {"name": "executor", "image": "python:3.9-slim",
                     "command": ["/bin/sh", "-c", "sleep infinity"], "volumeMounts": mounts},
                    {"name": "sidecar", "image": "arl-sidecar:latest", "imagePullPolicy": "Always",
                     "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"},
                               {"name": "grpc", "containerPort": 9090, "protocol": "TCP"}],
                     "volumeMounts": mounts}],
                "volumes": [{"name": "workspace", "emptyDir": {}}]}}}}


def split_ns(s, default_ns):
    if "/" in s:
        ns, name = s.split("/", 1)
        return ns, name
    return default_ns, s


# Set by SIGTERM/SIGINT. A plain flag, not a threading.Event: a handler runs in the main thread
# between two bytecodes, possibly inside Event.wait() with the Event's lock held, and
# Event.set() would then wait for that lock for ever (a hang seen under `ctest -j2`).
STOP = False


def _stop(signum, frame):
    global STOP
    STOP = True


def main(argv=None):
    # SIGTERM/SIGINT end the main loop below, which cleans up; installed first so a
    # signal during start-up is not lost either.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    a = parse_args(sys.argv[1:] if argv is None else argv)
    import re
    import uuid

    # Everything that can be wrong with the arguments is checked before anything is made.
    crds = load_crds(a.crd_dir)
    for need in ("warmpools", "sandboxes", "tasks"):
        if need not in crds:
            raise SystemExit("fake-arl: CRD for %s missing in %s" % (need, a.crd_dir))
    try:
        faults = Faults(a.faults, seed=a.seed)
    except ValueError as e:
        raise SystemExit("fake-arl: --faults: %s" % e)
    seeds = {}
    for s in a.pool_seed:
        name, _, d = s.partition("=")
        if not d or not os.path.isdir(d):
            raise SystemExit("fake-arl: --pool-seed %s: DIR must be an existing directory" % s)
        seeds[name] = os.path.abspath(d)
    pools = []
    for spec in a.pool:
        name, _, reps = spec.partition("=")
        ns, name = split_ns(name, a.namespace)
        if not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", name) or not reps.isdigit():
            raise SystemExit("fake-arl: --pool %s: expected NAME=REPLICAS with a DNS-label NAME" % spec)
        pools.append((ns, name, int(reps)))
    if a.workdir and not os.path.isdir(a.workdir):
        raise SystemExit("fake-arl: --workdir %s is not a directory" % a.workdir)

    pod_container.sweep_stale_dirs()
    tmp = tempfile.mkdtemp(prefix="fake-arl.%d." % os.getpid())
    own_workdir = a.workdir is None
    workdir = a.workdir or os.path.join(tmp, "pods")
    try:
        os.makedirs(workdir, exist_ok=True)
        store = Store(history_size=a.history)
        op = Operator(store, crds, faults, workdir, pod_delay=a.pod_delay, sandbox_delay=a.sandbox_delay,
                      task_delay=a.task_delay, retry_interval=a.retry_interval,
                      pending_interval=a.pending_interval, idle_timeout_default=a.idle_timeout_default,
                      grpc_timeout=a.grpc_timeout, task_workers=a.task_workers, use_bwrap=not a.no_bwrap,
                      pod_containers=not a.no_pod_container,
                      pool_seeds=seeds, seed=a.seed, verbose=a.verbose)
        for ns, name, reps in pools:
            body = warmpool_body(ns, name, reps)
            body["metadata"].update({"uid": str(uuid.uuid4()), "creationTimestamp": now_rfc3339()})
            store.put("warmpools", body, None)
        api = FakeApi(store, crds, op, faults, tokens=a.token, client_cert_auth=a.client_cert,
                      request_log=a.request_log, bookmark_interval=a.bookmark_interval, namespace=a.namespace,
                      seed=a.seed, verbose=a.verbose)
        ssl_ctx, ca_data, client = None, None, None
        if a.tls:
            certs = os.path.join(tmp, "certs")
            os.makedirs(certs, mode=0o700)   # its parent is traversable by the pods' uid
            make_certs(certs, client=a.client_cert)
            ssl_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ssl_ctx.load_cert_chain(os.path.join(certs, "server.crt"), os.path.join(certs, "server.key"))
            if a.client_cert:
                ssl_ctx.load_verify_locations(os.path.join(certs, "ca.crt"))
                ssl_ctx.verify_mode = ssl.CERT_OPTIONAL
                client = (b64file(os.path.join(certs, "client.crt")), b64file(os.path.join(certs, "client.key")))
            ca_data = b64file(os.path.join(certs, "ca.crt"))
        server = Server((a.host, a.port), api, ssl_ctx)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    port = server.server_address[1]
    url = "%s://127.0.0.1:%d" % ("https" if a.tls else "http", port)
    api.url, api.port = url, port

    op.start()
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    t.start()
    try:
        if a.kubeconfig:
            creds = not a.no_kubeconfig_credentials
            write_kubeconfig(a.kubeconfig, url, a.namespace, ca=ca_data,
                             token=(a.token[0] if a.token and creds else None), client=client if creds else None)
        sys.stdout.write(url + "\n")
        sys.stdout.flush()
        if a.verbose:
            sys.stderr.write("fake-arl: serving %s (pods in %s, bwrap %s)\n"
                             % (url, workdir, "on" if op.sidecar.bwrap else "off"))
        while not STOP:
            time.sleep(0.2)
    finally:
        api.stopping.set()
        server.shutdown()
        server.server_close()
        op.stop()
        if not a.keep_workdir:
            op.cleanup()
            if own_workdir:
                shutil.rmtree(workdir, ignore_errors=True)
        if a.keep_workdir and own_workdir:
            shutil.rmtree(os.path.join(tmp, "certs"), ignore_errors=True)
            sys.stderr.write("fake-arl: pod directories kept in %s\n" % workdir)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        if api.request_log:
            api.request_log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
