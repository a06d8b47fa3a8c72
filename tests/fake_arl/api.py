"""The Kubernetes REST API: routing, discovery, CRUD semantics, watches, auth, faults,
the request log and the /_fake/* control endpoints.

One handler thread per connection (ThreadingHTTPServer), HTTP/1.1 keep-alive; watches
are chunked streams of JSON lines. All object state lives in store.Store; every
read-modify-write holds the store lock, so resourceVersion preconditions are exact.
"""

import copy
import gzip
import json
import random
import re
import select
import socket
import ssl
import struct
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from faults import Faults
from store import (ApiError, Selector, decode_continue, encode_continue, json_patch, label_key_error,
                   label_value_error, merge_patch, now_rfc3339, parse_rfc3339)

GROUP = "arl.infra.io"
MAX_BODY = 3 * 1024 * 1024            # the API server's request body limit
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
OBJECT_META_FIELDS = {
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
    "ownerReferences", "finalizers", "managedFields",
}
SERVER_META_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "selfLink", "managedFields")
PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")


class Abort(Exception):
    """Raised to drop the connection without an answer."""


def not_found(plural, name, group=GROUP):
    res = "%s.%s" % (plural, group) if group else plural
    return ApiError(404, "NotFound", '%s "%s" not found' % (res, name),
                    {"name": name, "group": group, "kind": plural})


def bad_request(msg):
    return ApiError(400, "BadRequest", msg)


def invalid(crd, name, errs):
    msgs = [str(e) for e in errs]
    body = msgs[0] if len(msgs) == 1 else "[" + ", ".join(msgs) + "]"
    return ApiError(422, "Invalid", '%s.%s "%s" is invalid: %s' % (crd.kind, crd.group, name, body),
                    {"name": name, "group": crd.group, "kind": crd.kind, "causes": [e.cause() for e in errs]})


def human_duration(seconds):
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration (for the Age column)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return "%ds" % s
    m = s // 60
    if m < 10:
        return "%dm%ds" % (m, s % 60) if s % 60 else "%dm" % m
    if m < 180:
        return "%dm" % m
    h = s // 3600
    if h < 8:
        return "%dh%dm" % (h, m % 60) if m % 60 else "%dh" % h
    if h < 48:
        return "%dh" % h
    if h < 24 * 8:
        return "%dd%dh" % (h // 24, h % 24) if h % 24 else "%dd" % (h // 24)
    if h < 24 * 365 * 2:
        return "%dd" % (h // 24)
    return "%dy" % (h // 24 // 365)


def jsonpath_simple(obj, path):
    """Evaluates the simple '.a.b' JSONPaths used by printer columns."""
    cur = obj
    for part in filter(None, path.split(".")):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


class FakeApi:
    """State shared by all handler threads."""

    def __init__(self, store, crds, operator, faults, *, tokens=(), client_cert_auth=False,
                 request_log=None, bookmark_interval=1.0, namespace="default", seed=1, verbose=False):
        self.store = store
        self.crds = crds                  # plural -> schema.CRD
        self.operator = operator
        self.faults = faults
        self.tokens = set(tokens)
        self.client_cert_auth = client_cert_auth
        self.bookmark_interval = bookmark_interval
        self.default_namespace = namespace
        self.verbose = verbose
        self.rng = random.Random(seed)
        self.rng_lock = threading.Lock()
        self.log_lock = threading.Lock()
        self.requests = []
        self.request_seq = 0
        self.request_log = open(request_log, "a", encoding="utf-8") if request_log else None
        self.down_until = 0.0
        self.down_since = 0.0
        self.down_pending = None     # [creates let through, resource, seconds, spec]: /_fake/down?after=
        self.stopping = threading.Event()
        self.url = None
        self.port = None
        self.started = time.time()

    def auth_required(self):
        return bool(self.tokens) or self.client_cert_auth

    def is_down(self):
        return time.time() < self.down_until

    def go_down(self, seconds, spec=None):
        if spec is not None:
            self.faults.set(spec)
        self.down_since = time.time()
        self.down_until = self.down_since + seconds

    def down_at_create(self, resource):
        """Counts a create against a pending /_fake/down?after=K; True when this one starts
        the outage (the K creates before it went through)."""
        with self.log_lock:
            p = self.down_pending
            if p is None or p[1] not in (None, resource):
                return False
            p[0] -= 1
            if p[0] >= 0:
                return False
            self.down_pending = None
        self.go_down(p[2], p[3])
        return True

    def record_down(self, method, path, query):
        """Logs a request reset by /_fake/down (status 0, fault "down"), so that a test can
        count how hard a client knocks while the server is away. Control requests are not
        logged, as usual."""
        if path is None or path.startswith("/_fake"):
            return
        self.record({"time": round(time.time(), 6), "method": method, "path": path, "query": query,
                     "verb": None, "resource": None, "namespace": None, "name": None,
                     "watch": "watch=1" in (query or ""), "userAgent": None, "status": 0,
                     "fault": "down", "duration_ms": 0.0})

    def record(self, entry):
        with self.log_lock:
            self.request_seq += 1
            entry["seq"] = self.request_seq
            self.requests.append(entry)
            if self.request_log:
                self.request_log.write(json.dumps(entry, separators=(",", ":")) + "\n")
                self.request_log.flush()

    def gen_suffix(self):
        with self.rng_lock:
            return "".join(self.rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))


class Route:
    """What a request addresses."""

    def __init__(self, kind, plural=None, ns=None, name=None, sub=None):
        self.kind = kind          # "cr" "pods" "namespaces" "crds" or a discovery doc name
        self.plural = plural
        self.ns = ns              # None = all namespaces
        self.name = name
        self.sub = sub

    @property
    def resource(self):
        return self.plural + ("/" + self.sub if self.sub else "")


def parse_route(api, path):
    parts = [p for p in path.split("/") if p]
    n = len(parts)
    if not parts:
        return Route("root")
    if parts[0] in ("version", "healthz", "livez", "readyz") and n == 1:
        return Route(parts[0])
    if parts[0] == "openapi":
        return Route("openapi", name="/".join(parts[1:]))
    if parts[0] == "api":
        if n == 1:
            return Route("api")
        if parts[1] != "v1":
            return None
        rest = parts[2:]
        if not rest:
            return Route("api-v1")
        if rest[0] == "namespaces":
            if len(rest) == 1:
                return Route("namespaces", "namespaces")
            if len(rest) == 2:
                return Route("namespaces", "namespaces", name=rest[1])
            if rest[2] == "pods" and len(rest) in (3, 4):
                return Route("pods", "pods", rest[1], rest[3] if len(rest) == 4 else None)
            return None
        if rest == ["pods"]:
            return Route("pods", "pods")
        return None
    if parts[0] == "apis":
        if n == 1:
            return Route("apis")
        if parts[1] == "apiextensions.k8s.io":
            if n == 2:
                return Route("group-apiext")
            if parts[2] != "v1":
                return None
            if n == 3:
                return Route("resources-apiext")
            if parts[3] == "customresourcedefinitions" and n in (4, 5):
                return Route("crds", "customresourcedefinitions", None, parts[4] if n == 5 else None)
            return None
        if parts[1] != GROUP:
            return None
        if n == 2:
            return Route("group")
        if parts[2] != "v1alpha1":
            return None
        if n == 3:
            return Route("resources")
        rest = parts[3:]
        if rest[0] == "namespaces" and len(rest) >= 3:
            plural = rest[2]
            if plural not in api.crds or len(rest) > 5:
                return None
            name = rest[3] if len(rest) >= 4 else None
            sub = rest[4] if len(rest) == 5 else None
            if sub is not None and (sub != "status" or not api.crds[plural].has_status):
                return None
            return Route("cr", plural, rest[1], name, sub)
        if len(rest) == 1 and rest[0] in api.crds:
            return Route("cr", rest[0], None)
        return None
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-arl"

    def version_string(self):
        return self.server_version
    timeout = 300          # idle keep-alive connections are closed after this

    # ---- plumbing -----------------------------------------------------------------------

    @property
    def api(self):
        return self.server.api

    def log_message(self, fmt, *args):
        if self.api.verbose:
            super().log_message(fmt, *args)

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle plus
        # the client's delayed ACK cost ~40 ms per keep-alive request.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def handle(self):
        try:
            super().handle()
        except (Abort, ConnectionError, ssl.SSLError, socket.timeout, OSError, ValueError):
            pass

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def abort(self):
        """Closes the connection with a TCP RST (SO_LINGER 0) and stops the handler."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close_connection = True
        try:
            self.connection.close()
        except OSError:
            pass
        raise Abort()

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    self.close_connection = True
                    raise ApiError(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            self.close_connection = True
            raise ApiError(413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728")
        return self.rfile.read(n) if n else b""

    def send_json(self, code, obj, headers=None, content_type="application/json"):
        data = json.dumps(obj, separators=(",", ":")).encode()
        self.send_bytes(code, data, headers, content_type)

    def send_bytes(self, code, data, headers=None, content_type="application/json"):
        if getattr(self, "hold", False):
            return            # answer withheld: an "after" fault replaces it
        gz = len(data) > 128 * 1024 and "gzip" in (self.headers.get("Accept-Encoding") or "")
        if gz:      # the API server compresses large responses when asked
            data = gzip.compress(data, 5)
        self.status_sent = code
        self.log_request_entry(code)     # before the answer leaves: a client that got its
        self.send_response(code)         # answer finds the request in the log
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        if gz:
            self.send_header("Content-Encoding", "gzip")
        for k, v in (headers or []):
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def log_request_entry(self, status):
        entry, self.entry = getattr(self, "entry", None), None
        if entry is not None:
            entry["status"] = status
            entry["fault"] = self.fault_label
            entry["duration_ms"] = round((time.time() - self.t0) * 1000, 3)
            self.api.record(entry)

    def send_status(self, err):
        hdrs = list(err.headers.items())
        self.send_json(err.code, err.status(), hdrs)

    # ---- dispatch -----------------------------------------------------------------------

    def dispatch(self):
        api = self.api
        self.t0 = time.time()
        self.status_sent = None
        self.entry = None
        self.hold = False
        self.fault_label = None
        self.warnings = []
        url = urlsplit(self.path)
        path = url.path
        self.query = {k: v[0] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        if api.is_down():
            api.record_down(self.command, path, url.query)
            self.abort()
        if path.startswith("/_fake/") or path == "/_fake":
            return self.control(path)
        route = parse_route(api, path)
        verb = self.verb_of(route)
        if verb == "create" and route and route.plural and api.down_at_create(route.resource):
            api.record_down(self.command, path, url.query)
            self.abort()
        self.entry = {"time": round(self.t0, 6), "method": self.command, "path": path, "query": url.query,
                      "verb": verb, "resource": route.resource if route and route.plural else None,
                      "namespace": route.ns if route else None, "name": route.name if route else None,
                      "watch": verb == "watch", "userAgent": self.headers.get("User-Agent")}
        if self.command in ("POST", "PUT", "PATCH"):
            self.entry["contentType"] = self.headers.get("Content-Type")
        try:
            try:
                body = self.read_body() if self.command in ("POST", "PUT", "PATCH", "DELETE") else b""
                public = route is not None and route.kind in ("version", "healthz", "livez", "readyz")
                if api.auth_required() and not public and not self.authenticated():
                    raise ApiError(401, "Unauthorized", "Unauthorized")
                if route is None:
                    raise ApiError(404, "NotFound", "the server could not find the requested resource",
                                   {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})
                decision = None
                if route.plural:
                    decision = api.faults.decide(verb, route.resource, cluster=route.ns is None)
                    self.fault_label = decision.label
                    self.before_faults(decision, route, verb)
                if verb == "watch":
                    expire = api.faults.watch_should_410()
                    if expire:
                        self.fault_label = "watch-410"
                    return self.watch(route, expire)     # logged when the stream starts
                # An "after" fault: carry the request out, then throw its answer away and
                # fail instead (the client cannot tell whether the write happened).
                self.hold = bool(decision and decision.after)
                try:
                    self.route(route, verb, body)
                except ApiError:
                    if not self.hold:
                        raise
                if self.hold:
                    self.hold = False
                    if decision.reset:
                        self.abort()
                    raise_error_fault(decision)
            except ApiError as e:
                self.hold = False
                if self.status_sent is None:
                    self.send_status(e)
        finally:
            # not answered: the connection was reset (injected, or the client went away)
            self.log_request_entry(0)

    def verb_of(self, route):
        m = self.command
        if route is None:
            return m.lower()
        if m in ("GET", "HEAD"):
            if route.plural is None:
                return "get"                    # discovery and friends
            if self.query.get("watch") in ("1", "true") and route.sub is None:
                return "watch"
            return "list" if route.name is None else "get"
        if m == "POST":
            return "create"
        if m == "PUT":
            return "update"
        if m == "PATCH":
            return "patch"
        if m == "DELETE":
            return "delete" if route.name else "deletecollection"
        return m.lower()

    def authenticated(self):
        api = self.api
        auth = self.headers.get("Authorization") or ""
        if auth[:7].lower() == "bearer " and auth[7:].strip() in api.tokens:
            return True
        if api.client_cert_auth and isinstance(self.connection, ssl.SSLSocket):
            try:
                return bool(self.connection.getpeercert())
            except (ValueError, OSError):
                return False
        return False

    def before_faults(self, d, route, verb):
        if d.forbidden:
            res = "%s.%s" % (route.plural, GROUP) if route.kind == "cr" else route.plural
            what = '%s "%s"' % (res, route.name) if route.name else res
            where = ' in the namespace "%s"' % route.ns if route.ns else " at the cluster scope"
            raise ApiError(403, "Forbidden", '%s is forbidden: User "fake-arl-user" cannot %s resource "%s" in '
                           'API group "%s"%s' % (what, verb, route.resource, GROUP if route.kind == "cr" else "",
                                                  where),
                           {"name": route.name or "", "group": GROUP, "kind": route.plural})
        if d.latency:
            time.sleep(d.latency)
        if d.reset and not d.after:
            self.abort()
        if d.error and not d.after:
            raise_error_fault(d)

    # ---- routing ------------------------------------------------------------------------

    def route(self, route, verb, body):
        k = route.kind
        if k in ("version", "healthz", "livez", "readyz", "root", "api", "api-v1", "apis", "group",
                 "resources", "group-apiext", "resources-apiext", "openapi"):
            if self.command not in ("GET", "HEAD"):
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
            return self.discovery(route)
        if k in ("pods", "namespaces", "crds"):
            if verb not in ("get", "list"):
                raise ApiError(405, "MethodNotAllowed",
                               "the server does not allow this method on the requested resource (fake-arl: read-only)")
            return self.read_only(route, verb)
        crd = self.api.crds[route.plural]
        if route.ns is None and verb not in ("list", "watch"):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        fn = {"get": self.get_obj, "list": self.list_objs, "create": self.create, "update": self.update,
              "patch": self.patch, "delete": self.delete, "deletecollection": self.delete_collection}.get(verb)
        if fn is None or (route.sub and verb not in ("get", "update", "patch")):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if route.name is not None and verb in ("create",):
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        return fn(crd, route, body)

    # ---- discovery ------------------------------------------------------------------------

    def discovery(self, route):
        api = self.api
        k = route.kind
        if k in ("healthz", "livez", "readyz"):
            return self.send_bytes(200, b"ok", content_type="text/plain; charset=utf-8")
        if k == "version":
            return self.send_json(200, {"major": "1", "minor": "28", "gitVersion": "v1.28.0-fake-arl",
                                        "gitCommit": "0000000000000000000000000000000000000000",
                                        "gitTreeState": "clean", "buildDate": "2026-01-08T00:00:00Z",
                                        "goVersion": "go1.20", "compiler": "gc", "platform": "linux/amd64"})
        if k == "root":
            return self.send_json(200, {"paths": ["/api", "/api/v1", "/apis", "/apis/" + GROUP,
                                                  "/apis/%s/v1alpha1" % GROUP, "/healthz", "/livez",
                                                  "/readyz", "/version"]})
        if k == "api":
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:%s" % api.port}]})
        if k == "api-v1":
            return self.send_json(200, {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                {"name": "namespaces", "singularName": "namespace", "namespaced": False, "kind": "Namespace",
                 "verbs": ["get", "list"], "shortNames": ["ns"]},
                {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
                 "verbs": ["get", "list"], "shortNames": ["po"], "categories": ["all"]}]})
        gv = {"groupVersion": GROUP + "/v1alpha1", "version": "v1alpha1"}
        group = {"name": GROUP, "versions": [gv], "preferredVersion": gv}
        xgv = {"groupVersion": "apiextensions.k8s.io/v1", "version": "v1"}
        xgroup = {"name": "apiextensions.k8s.io", "versions": [xgv], "preferredVersion": xgv}
        if k == "apis":
            return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [xgroup, group]})
        if k == "group":
            return self.send_json(200, dict({"kind": "APIGroup", "apiVersion": "v1"}, **group))
        if k == "group-apiext":
            return self.send_json(200, dict({"kind": "APIGroup", "apiVersion": "v1"}, **xgroup))
        if k == "resources-apiext":
            return self.send_json(200, {"kind": "APIResourceList", "apiVersion": "v1",
                                        "groupVersion": "apiextensions.k8s.io/v1", "resources": [
                {"name": "customresourcedefinitions", "singularName": "customresourcedefinition",
                 "namespaced": False, "kind": "CustomResourceDefinition", "verbs": ["get", "list"],
                 "shortNames": ["crd", "crds"], "categories": ["api-extensions"]}]})
        if k == "resources":
            res = []
            for plural in sorted(api.crds):
                crd = api.crds[plural]
                r = {"name": plural, "singularName": crd.singular, "namespaced": crd.namespaced, "kind": crd.kind,
                     "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
                     "storageVersionHash": uuid.uuid5(uuid.NAMESPACE_URL, plural).hex[:11]}
                if crd.short_names:
                    r["shortNames"] = crd.short_names
                if crd.categories:
                    r["categories"] = crd.categories
                res.append(r)
                if crd.has_status:
                    res.append({"name": plural + "/status", "singularName": "", "namespaced": crd.namespaced,
                                "kind": crd.kind, "verbs": ["get", "patch", "update"]})
            return self.send_json(200, {"kind": "APIResourceList", "apiVersion": "v1",
                                        "groupVersion": GROUP + "/v1alpha1", "resources": res})
        if k == "openapi":
            # No OpenAPI documents are served. kubectl reads /openapi/v2 as protobuf: an empty
            # body is a valid, empty openapi_v2.Document, so client-side validation finds no
            # schema for the ARL kinds and skips them (and apply falls back to JSON merge
            # patch, as it does for every custom resource). /openapi/v3 is 404 so newer
            # kubectl falls back to v2.
            if route.name == "v2":
                if "protobuf" in (self.headers.get("Accept") or ""):
                    return self.send_bytes(200, b"", content_type="application/octet-stream")
                return self.send_json(200, {"swagger": "2.0", "info": {"title": "fake-arl", "version": "v1.28.0"},
                                            "paths": {}, "definitions": {}})
            raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def read_only(self, route, verb):
        api = self.api
        if route.kind == "namespaces":
            names = sorted(set(api.store.namespaces()) | {"default", api.default_namespace})
            objs = {n: {"apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": n, "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, n)),
                                     "resourceVersion": "1", "creationTimestamp": now_rfc3339(api.started),
                                     "labels": {"kubernetes.io/metadata.name": n}},
                        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}} for n in names}
            kind, list_kind = "Namespace", "NamespaceList"
        elif route.kind == "crds":
            objs = {}
            for crd in api.crds.values():
                o = copy.deepcopy(crd.doc)
                o["metadata"].update({"uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, o["metadata"]["name"])),
                                      "resourceVersion": "1", "generation": 1,
                                      "creationTimestamp": now_rfc3339(api.started)})
                o["status"] = {"acceptedNames": o["spec"]["names"], "storedVersions": [crd.version],
                               "conditions": [{"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                                               "message": "the initial names have been accepted",
                                               "lastTransitionTime": now_rfc3339(api.started)}]}
                objs[o["metadata"]["name"]] = o
            kind, list_kind = "CustomResourceDefinition", "CustomResourceDefinitionList"
        else:
            objs = {}
            for p in api.operator.pod_list(route.ns):
                objs[(p.namespace, p.name)] = {
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": p.name, "namespace": p.namespace, "uid": p.uid, "resourceVersion": "1",
                                 "generateName": p.pool + "-", "labels": p.labels(),
                                 "creationTimestamp": now_rfc3339(p.created),
                                 "annotations": {"fake-arl.test/root": p.root,
                                                 "fake-arl.test/workspace": p.workspace},
                                 "ownerReferences": [{"apiVersion": GROUP + "/v1alpha1", "kind": "WarmPool",
                                                      "name": p.pool, "uid": "", "controller": True,
                                                      "blockOwnerDeletion": True}]},
                    "spec": {"containers": [{"name": "executor"}, {"name": "sidecar"}]},
                    "status": {"phase": p.phase, "podIP": "127.0.0.1"}}
            kind, list_kind = "Pod", "PodList"
        if verb == "get":
            key = (route.ns, route.name) if route.kind == "pods" else route.name
            if key not in objs:
                raise not_found(route.kind if route.kind != "crds" else "customresourcedefinitions",
                                route.name, "apiextensions.k8s.io" if route.kind == "crds" else "")
            return self.send_obj(200, objs[key], None)
        sel = Selector(self.query.get("labelSelector"), self.query.get("fieldSelector"))
        items = [o for _, o in sorted(objs.items()) if sel.matches(o)]
        lst = {"apiVersion": "v1" if kind != "CustomResourceDefinition" else "apiextensions.k8s.io/v1",
               "kind": list_kind, "metadata": {"resourceVersion": str(api.store.rv)}, "items": items}
        if self.wants_table():
            return self.send_json(200, self.table(None, items, lst["metadata"]))
        return self.send_json(200, lst)

    # ---- helpers for custom resources ---------------------------------------------------------

    def wants_table(self):
        return "as=Table" in (self.headers.get("Accept") or "")

    def send_obj(self, code, obj, crd):
        hdrs = [("Warning", '299 - "%s"' % w.replace('"', '\\"')) for w in self.warnings]
        if self.wants_table():
            return self.send_json(code, self.table(crd, [obj], {"resourceVersion": obj["metadata"].get("resourceVersion", "")}), hdrs)
        return self.send_json(code, obj, hdrs)

    def table(self, crd, items, list_meta):
        cols = [{"name": "Name", "type": "string", "format": "name", "priority": 0,
                 "description": "Name must be unique within a namespace."}]
        extra = crd.printer_columns if crd else []
        for c in extra:
            cols.append({"name": c["name"], "type": c.get("type", "string"), "format": c.get("format", ""),
                         "description": c.get("description", ""), "priority": c.get("priority", 0)})
        if crd is None and items and items[0].get("kind") == "Pod":
            cols.append({"name": "Status", "type": "string", "format": "", "description": "", "priority": 0})
            extra = [{"jsonPath": ".status.phase"}]
        cols.append({"name": "Age", "type": "date", "format": "", "priority": 0,
                     "description": "CreationTimestamp is a timestamp representing the server time when this object was created."})
        include = self.query.get("includeObject", "Metadata")
        rows = []
        now = time.time()
        for o in items:
            md = o["metadata"]
            try:
                age = human_duration(now - parse_rfc3339(md["creationTimestamp"]))
            except (KeyError, ValueError):
                age = "<unknown>"
            cells = [md["name"]] + [jsonpath_simple(o, c["jsonPath"]) for c in extra] + [age]
            row = {"cells": cells}
            if include == "Object":
                row["object"] = o
            elif include != "None":
                row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": md}
            rows.append(row)
        return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
                "columnDefinitions": cols, "rows": rows}

    def parse_body(self, body, what="object"):
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
        if self.command in ("POST", "PUT") and ctype not in ("application/json", ""):
            raise ApiError(415, "UnsupportedMediaType",
                           '%s is not supported: fake-arl accepts application/json (a real API server also '
                           'takes application/yaml)' % ctype)
        try:
            obj = json.loads(body.decode("utf-8") if body else "")
        except (ValueError, UnicodeDecodeError) as e:
            raise bad_request("json: cannot unmarshal request body: %s" % e)
        if not isinstance(obj, dict):
            raise bad_request("json: cannot unmarshal %s into Go value of type map[string]interface {}"
                              % type(obj).__name__)
        return obj

    def check_type_meta(self, crd, obj):
        if not obj.get("kind"):
            raise bad_request("Object 'Kind' is missing in '%s'" % json.dumps(obj, separators=(",", ":"))[:200])
        if not obj.get("apiVersion"):
            raise bad_request("Object 'apiVersion' is missing in '%s'" % json.dumps(obj, separators=(",", ":"))[:200])
        if obj["apiVersion"] != crd.api_version:
            raise bad_request("the API version in the data (%s) does not match the expected API version (%s)"
                              % (obj["apiVersion"], crd.api_version))
        if obj["kind"] != crd.kind:
            raise bad_request("the kind in the data (%s) does not match the expected kind (%s)" % (obj["kind"], crd.kind))

    def field_validation(self):
        fv = self.query.get("fieldValidation", "Warn") or "Warn"
        if fv not in ("Strict", "Warn", "Ignore"):
            raise bad_request('fieldValidation invalid value: %s; must be one of "Ignore", "Warn", or "Strict"' % fv)
        return fv

    def dry_run(self):
        dr = self.query.get("dryRun")
        if dr and dr != "All":
            raise bad_request("dryRun: Unsupported value: %r: supported values: \"All\"" % dr)
        return dr == "All"

    def admit(self, crd, obj, old, sub):
        """Normalises a request object: ObjectMeta, pruning, defaulting, schema + metadata
        validation. Returns the object to store (status/metadata rules applied)."""
        fv = self.field_validation()
        unknown = []
        md = obj.get("metadata")
        if md is None:
            md = obj["metadata"] = {}
        if not isinstance(md, dict):
            raise bad_request("metadata must be an object")
        for k in list(md):
            if k not in OBJECT_META_FIELDS:
                unknown.append("metadata." + k)
                del md[k]
        if sub == "status":
            part = ("status",)
        else:
            part = ("spec",)
            # the main resource never changes status (status subresource is enabled)
        crd.prune_and_default(obj, unknown, parts=part)
        if unknown and fv == "Strict":
            raise bad_request("strict decoding error: " + ", ".join('unknown field "%s"' % u for u in unknown))
        if unknown and fv == "Warn":
            self.warnings.extend('unknown field "%s"' % u for u in unknown)
        if sub == "status":
            new = copy.deepcopy(old)
            if "status" in obj:
                new["status"] = obj["status"]
            else:
                new.pop("status", None)
        else:
            new = obj
            new.pop("status", None)
            if old is not None and "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            nmd = new["metadata"]
            if old is None:
                for f in SERVER_META_FIELDS:
                    nmd.pop(f, None)
            else:
                omd = old["metadata"]
                for f in SERVER_META_FIELDS:
                    if f == "resourceVersion":
                        continue
                    if f in omd:
                        nmd[f] = omd[f]
                    else:
                        nmd.pop(f, None)
                nmd.pop("generateName", None)
                if "generateName" in omd:
                    nmd["generateName"] = omd["generateName"]
        errs = crd.validate(new, parts=part)
        if sub != "status":
            errs += self.meta_errors(new["metadata"], old)
        if errs:
            raise invalid(crd, new["metadata"].get("name") or new["metadata"].get("generateName", ""), errs)
        return new

    def meta_errors(self, md, old):
        from schema import FieldError
        errs = []
        name = md.get("name", "")
        if name:
            if len(name) > 253:
                errs.append(FieldError("metadata.name", "Invalid value", name, "must be no more than 253 characters"))
            elif not DNS1123_SUBDOMAIN.match(name):
                errs.append(FieldError("metadata.name", "Invalid value", name,
                                       "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                                       "characters, '-' or '.', and must start and end with an alphanumeric "
                                       "character (e.g. 'example.com', regex used for validation is "
                                       "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"))
        for field in ("labels", "annotations"):
            v = md.get(field)
            if v is None:
                continue
            if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
                errs.append(FieldError("metadata." + field, "Invalid value", v, "must be a map of strings"))
                continue
            for k, val in v.items():
                ke = label_key_error(k)
                if ke:
                    errs.append(FieldError("metadata.%s" % field, "Invalid value", k, ke))
                if field == "labels":
                    ve = label_value_error(val)
                    if ve:
                        errs.append(FieldError("metadata.labels", "Invalid value", val, ve))
            if field == "annotations" and sum(len(k) + len(x) for k, x in v.items()) > 262144:
                errs.append(FieldError("metadata.annotations", "Too long", None,
                                       "must have at most 262144 bytes", show_value=False))
        fins = md.get("finalizers")
        if fins is not None:
            if not isinstance(fins, list) or not all(isinstance(f, str) for f in fins):
                errs.append(FieldError("metadata.finalizers", "Invalid value", fins, "must be a list of strings"))
            else:
                for i, f in enumerate(fins):
                    if label_key_error(f):
                        errs.append(FieldError("metadata.finalizers[%d]" % i, "Invalid value", f,
                                               "name part " + label_key_error(f)))
                if old is not None and old["metadata"].get("deletionTimestamp"):
                    added = set(fins) - set(old["metadata"].get("finalizers") or [])
                    if added:
                        errs.append(FieldError("metadata.finalizers", "Forbidden", None,
                                               "no new finalizers can be added if the object is being deleted, "
                                               "found new finalizers %s" % json.dumps(sorted(added))))
        return errs

    def check_namespace(self, obj, route):
        md = obj.get("metadata")
        if isinstance(md, dict):
            ns = md.get("namespace")
            if ns and ns != route.ns:
                raise bad_request("the namespace of the provided object does not match the namespace sent on the request")
            md["namespace"] = route.ns

    # ---- verbs ------------------------------------------------------------------------------

    def get_obj(self, crd, route, body):
        obj = self.api.store.get(route.plural, route.ns, route.name)
        if obj is None:
            raise not_found(route.plural, route.name)
        return self.send_obj(200, obj, crd)

    def list_objs(self, crd, route, body):
        store = self.api.store
        sel = Selector(self.query.get("labelSelector"), self.query.get("fieldSelector"))
        items, rv = store.list(route.plural, route.ns, sel)
        meta = {"resourceVersion": str(rv)}
        cont = self.query.get("continue")
        if cont:
            crv, cns, cname = decode_continue(cont)
            if crv < store.compacted_rv(route.plural):
                raise ApiError(410, "Expired", "The provided continue parameter is too old to display a consistent "
                               "list result. You can start a new list without the continue parameter, or use the "
                               "continue token in this response to retrieve the remainder of the results. "
                               "Continuing with the provided token results in an inconsistent list - objects that "
                               "were created, modified, or deleted between the time the first chunk was returned "
                               "and now may show up in the list.")
            items = [o for o in items if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > (cns, cname)]
        try:
            limit = int(self.query.get("limit") or 0)
        except ValueError:
            raise bad_request("limit: must be an integer")
        if limit > 0 and len(items) > limit:
            last = items[limit - 1]["metadata"]
            meta["continue"] = encode_continue(rv, last.get("namespace", ""), last["name"])
            meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        if self.wants_table():
            return self.send_json(200, self.table(crd, items, meta))
        return self.send_json(200, {"apiVersion": crd.api_version, "kind": crd.list_kind, "metadata": meta,
                                    "items": items})

    def create(self, crd, route, body):
        store = self.api.store
        obj = self.parse_body(body)
        self.check_type_meta(crd, obj)
        self.check_namespace(obj, route)
        md = obj.get("metadata") or {}
        if isinstance(md, dict) and md.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        dry = self.dry_run()
        with store.lock:
            if isinstance(md, dict) and not md.get("name") and md.get("generateName"):
                for _ in range(20):
                    cand = md["generateName"] + self.api.gen_suffix()
                    if store.get(route.plural, route.ns, cand) is None:
                        md["name"] = cand
                        break
            if not (isinstance(md, dict) and md.get("name")):
                from schema import FieldError
                raise invalid(crd, "", [FieldError("metadata.name", "Required value",
                                                   detail="name or generateName is required")])
            new = self.admit(crd, obj, None, None)
            nmd = new["metadata"]
            if store.get(route.plural, route.ns, nmd["name"]) is not None:
                raise ApiError(409, "AlreadyExists", '%s.%s "%s" already exists' % (route.plural, crd.group, nmd["name"]),
                               {"name": nmd["name"], "group": crd.group, "kind": route.plural})
            nmd["uid"] = str(uuid.uuid4())
            nmd["creationTimestamp"] = now_rfc3339()
            nmd["generation"] = 1
            if dry:
                nmd["resourceVersion"] = ""
                return self.send_obj(201, new, crd)
            stored = store.put(route.plural, new, None)
        return self.send_obj(201, stored, crd)

    def update(self, crd, route, body):
        obj = self.parse_body(body)
        self.check_type_meta(crd, obj)
        self.check_namespace(obj, route)
        md = obj.get("metadata")
        if isinstance(md, dict):
            if md.get("name") and md["name"] != route.name:
                raise bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                                  % (md["name"], route.name))
            md["name"] = route.name
        with self.api.store.lock:
            cur = self.api.store.get(route.plural, route.ns, route.name)
            if cur is None:
                raise not_found(route.plural, route.name)
            return self.write_update(crd, route, obj, cur)

    def write_update(self, crd, route, obj, cur):
        """Common tail of PUT and PATCH (called with the store lock held)."""
        store = self.api.store
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if rv and rv != cur["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s.%s "%s": the object has been '
                           'modified; please apply your changes to the latest version and try again'
                           % (route.plural, crd.group, route.name),
                           {"name": route.name, "group": crd.group, "kind": route.plural})
        new = self.admit(crd, obj, cur, route.sub)
        bump = False
        if route.sub != "status":
            strip = lambda o: {k: v for k, v in o.items() if k not in ("metadata", "status")}
            bump = strip(new) != strip(cur)
        if self.dry_run():
            return self.send_obj(200, new, crd)
        stored = store.put(route.plural, new, cur, bump_generation=bump)
        return self.send_obj(200, stored, crd)

    def patch(self, crd, route, body):
        store = self.api.store
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype not in PATCH_TYPES:
            raise ApiError(415, "UnsupportedMediaType",
                           "the body of the request was in an unknown format - accepted media types include: "
                           + ", ".join(PATCH_TYPES))
        try:
            patch = json.loads(body.decode("utf-8") or "null")
        except (ValueError, UnicodeDecodeError) as e:
            if ctype == "application/apply-patch+yaml":
                raise bad_request("fake-arl accepts apply patches only as JSON (a YAML subset): %s" % e)
            raise bad_request("error decoding patch: %s" % e)
        with store.lock:
            cur = store.get(route.plural, route.ns, route.name)
            if ctype == "application/apply-patch+yaml":
                if not self.query.get("fieldManager"):
                    raise ApiError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: '
                                   'Required value: is required for apply patch')
                if not isinstance(patch, dict):
                    raise bad_request("apply patch must be an object")
                self.check_type_meta(crd, patch)
                self.check_namespace(patch, route)
                pmd = patch.setdefault("metadata", {})
                if pmd.get("name") and pmd["name"] != route.name:
                    raise bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                                      % (pmd["name"], route.name))
                pmd["name"] = route.name
                if cur is None:
                    if route.sub:
                        raise not_found(route.plural, route.name)
                    # server-side apply creates (simplification: no field ownership)
                    new = self.admit(crd, copy.deepcopy(patch), None, None)
                    new["metadata"].update({"uid": str(uuid.uuid4()), "creationTimestamp": now_rfc3339(),
                                            "generation": 1})
                    if self.dry_run():
                        return self.send_obj(201, new, crd)
                    return self.send_obj(201, store.put(route.plural, new, None), crd)
                doc = merge_patch(cur, patch)
            else:
                if cur is None:
                    raise not_found(route.plural, route.name)
                try:
                    if ctype == "application/json-patch+json":
                        doc = json_patch(cur, patch)
                    else:
                        if not isinstance(patch, dict):
                            raise ValueError("a merge patch must be a JSON object")
                        doc = merge_patch(cur, patch)
                except (ValueError, KeyError, TypeError) as e:
                    raise ApiError(422, "Invalid", str(e))
            if not isinstance(doc, dict):
                raise bad_request("patched object is not an object")
            if doc.get("apiVersion") != crd.api_version or doc.get("kind") != crd.kind:
                self.check_type_meta(crd, doc)
            dmd = doc.get("metadata") or {}
            if dmd.get("name") != route.name or dmd.get("namespace", route.ns) != route.ns:
                raise bad_request("metadata.name and metadata.namespace cannot be changed by a patch")
            return self.write_update(crd, route, doc, cur)

    def delete_options(self, body):
        if not body:
            opts = {}
        else:
            try:
                opts = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                raise bad_request("error decoding DeleteOptions: %s" % e)
            if not isinstance(opts, dict):
                raise bad_request("DeleteOptions must be an object")
        for q in ("propagationPolicy", "gracePeriodSeconds"):
            if q in self.query:
                opts[q] = self.query[q]
        pol = opts.get("propagationPolicy")
        if pol not in (None, "", "Background", "Foreground", "Orphan"):
            raise ApiError(422, "Invalid", "propagationPolicy: Unsupported value: %r" % pol)
        return opts

    def delete_one(self, crd, plural, ns, name, opts):
        """Deletes under the store lock. Returns the object as answered."""
        store = self.api.store
        cur = store.get(plural, ns, name)
        if cur is None:
            raise not_found(plural, name)
        pre = opts.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != cur["metadata"].get("uid"):
            raise ApiError(409, "Conflict", "Operation cannot be fulfilled on %s.%s \"%s\": Precondition failed: "
                           "UID in precondition: %s, UID in object meta: %s"
                           % (plural, crd.group, name, pre["uid"], cur["metadata"].get("uid")))
        if pre.get("resourceVersion") and pre["resourceVersion"] != cur["metadata"]["resourceVersion"]:
            raise ApiError(409, "Conflict", "Operation cannot be fulfilled on %s.%s \"%s\": Precondition failed: "
                           "ResourceVersion in precondition: %s, ResourceVersion in object meta: %s"
                           % (plural, crd.group, name, pre["resourceVersion"], cur["metadata"]["resourceVersion"]))
        if self.dry_run():
            return cur
        if cur["metadata"].get("finalizers"):
            if cur["metadata"].get("deletionTimestamp"):
                return cur
            new = copy.deepcopy(cur)
            new["metadata"]["deletionTimestamp"] = now_rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            return store.put(plural, new, cur, bump_generation=True)
        return store.remove(plural, ns, name)

    def delete(self, crd, route, body):
        opts = self.delete_options(body)
        with self.api.store.lock:
            obj = self.delete_one(crd, route.plural, route.ns, route.name, opts)
        return self.send_json(200, obj)

    def delete_collection(self, crd, route, body):
        opts = self.delete_options(body)
        sel = Selector(self.query.get("labelSelector"), self.query.get("fieldSelector"))
        out = []
        with self.api.store.lock:
            items, rv = self.api.store.list(route.plural, route.ns, sel)
            for o in items:
                out.append(self.delete_one(crd, route.plural, o["metadata"]["namespace"], o["metadata"]["name"], opts))
        return self.send_json(200, {"apiVersion": crd.api_version, "kind": crd.list_kind,
                                    "metadata": {"resourceVersion": str(rv)}, "items": out})

    # ---- watch ------------------------------------------------------------------------------

    def watch(self, route, expire=False):
        api, store = self.api, self.api.store
        crd = api.crds.get(route.plural)
        if crd is None:
            raise ApiError(405, "MethodNotAllowed", "fake-arl: watch is not supported on %s" % route.plural)
        field = self.query.get("fieldSelector") or ""
        if route.name:
            field = ",".join(filter(None, [field, "metadata.name=" + route.name]))
        sel = Selector(self.query.get("labelSelector"), field)
        rv_param = self.query.get("resourceVersion") or ""
        try:
            start_rv = int(rv_param) if rv_param not in ("", "0") else None
        except ValueError:
            raise bad_request('invalid resource version "%s"' % rv_param)
        try:
            timeout = float(self.query.get("timeoutSeconds") or 1800)
        except ValueError:
            raise bad_request("timeoutSeconds: must be an integer")
        bookmarks = self.query.get("allowWatchBookmarks") in ("1", "true")
        cut = api.faults.watch_cut_after()
        t_end = time.monotonic() + timeout
        t_cut = time.monotonic() + cut if cut else None

        self.status_sent = 200
        self.log_request_entry(200)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

        as_table = self.wants_table()
        first = [True]

        def send(ev_type, obj):
            if as_table and ev_type in ("ADDED", "MODIFIED", "DELETED"):
                # kubectl get -w: Table events, column definitions in the first one only
                obj = self.table(crd, [obj], {"resourceVersion": obj["metadata"]["resourceVersion"]})
                if not first[0]:
                    obj["columnDefinitions"] = []
                first[0] = False
            data = json.dumps({"type": ev_type, "object": obj}, separators=(",", ":")).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

        def expired(rv):
            send("ERROR", {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": "too old resource version: %d (%d)" % (rv, store.compacted_rv(route.plural) + 1),
                           "reason": "Expired", "code": 410})

        def finish():
            self.wfile.write(b"0\r\n\r\n")

        if expire:                       # injected: as if the resourceVersion were too old
            expired(start_rv or 0)
            return finish()
        if start_rv is None:
            with store.lock:
                items, last = store.list(route.plural, route.ns, sel)
            for o in items:
                send("ADDED", o)
        else:
            last = start_rv
            if store.events_after(route.plural, last) is None:
                expired(last)
                return finish()
        next_bookmark = time.monotonic() + api.bookmark_interval
        conn = self.connection
        while True:
            now = time.monotonic()
            if api.stopping.is_set() or api.is_down():
                self.abort()
            if t_cut is not None and now >= t_cut:
                self.abort()             # injected: the stream dies without its last chunk
            if now >= t_end:
                return finish()
            try:
                if select.select([conn], [], [], 0)[0]:
                    return               # the client went away (or broke protocol)
            except (ValueError, OSError):
                return
            wait = min(t_end - now, 0.5, next_bookmark - now if bookmarks else 0.5)
            if t_cut is not None:
                wait = min(wait, t_cut - now)
            with store.cond:
                if store.rv <= last and wait > 0:
                    store.cond.wait(wait)
                evs = store.events_after(route.plural, last)
                current = store.rv
            if evs is None:
                expired(last)
                return finish()
            for ev in evs:
                last = ev.rv
                if route.ns is not None and ev.namespace != route.ns:
                    continue
                typ = ev.type
                if not sel.empty():
                    new_ok = sel.matches(ev.obj)
                    old_ok = ev.old is not None and sel.matches(ev.old)
                    if typ == "MODIFIED":
                        typ = "MODIFIED" if new_ok and old_ok else "ADDED" if new_ok else "DELETED" if old_ok else None
                    elif typ == "DELETED":
                        typ = typ if old_ok or new_ok else None
                    elif not new_ok:
                        typ = None
                if typ:
                    send(typ, ev.obj)
            last = max(last, current)       # every event of this kind up to `current` is handled
            if bookmarks and time.monotonic() >= next_bookmark:
                send("BOOKMARK", {"kind": crd.kind, "apiVersion": crd.api_version,
                                  "metadata": {"resourceVersion": str(last)}})
                next_bookmark = time.monotonic() + api.bookmark_interval

    # ---- /_fake control endpoints ------------------------------------------------------------

    def control(self, path):
        api = self.api
        body = self.read_body() if self.command in ("POST", "PUT", "PATCH", "DELETE") else b""
        try:
            if path == "/_fake/state" and self.command == "GET":
                return self.send_json(200, self.state())
            if path == "/_fake/requests":
                if self.command == "GET":
                    since = int(self.query.get("since") or 0)
                    with api.log_lock:
                        lines = [json.dumps(e, separators=(",", ":")) for e in api.requests if e["seq"] > since]
                    data = ("\n".join(lines) + ("\n" if lines else "")).encode()
                    return self.send_bytes(200, data, content_type="application/x-ndjson")
                if self.command == "DELETE":
                    with api.log_lock:
                        api.requests.clear()
                        seq = api.request_seq
                    return self.send_json(200, {"cleared": True, "seq": seq})
            if path == "/_fake/faults":
                if self.command == "GET":
                    return self.send_json(200, {"spec": api.faults.spec})
                if self.command in ("POST", "PUT"):
                    text = body.decode("utf-8").strip()
                    if text.startswith("{"):
                        text = json.loads(text).get("spec", "")
                    try:
                        api.faults.set(text)
                    except ValueError as e:
                        raise bad_request(str(e))
                    return self.send_json(200, {"spec": api.faults.spec})
            if path == "/_fake/down" and self.command == "POST":
                seconds = float(self.query.get("seconds") or 10)
                spec = body.decode("utf-8").strip() or None
                if spec is not None:
                    try:
                        Faults(spec)
                    except ValueError as e:
                        raise bad_request(str(e))
                if self.query.get("after"):
                    # Down at a point of the client's progress, not of the clock: a test on a
                    # busy machine cannot miss the middle of a run.
                    with api.log_lock:
                        api.down_pending = [int(self.query["after"]), self.query.get("resource"), seconds, spec]
                    return self.send_json(200, {"downForSeconds": seconds, "afterCreates": int(self.query["after"])})
                # Down before the answer leaves: the client's next request, however soon, is
                # refused (this one was let in already).
                api.go_down(seconds, spec)
                self.close_connection = True
                self.send_json(200, {"downForSeconds": seconds})
                return
            if path == "/_fake/tokens" and self.command in ("POST", "PUT"):
                text = body.decode("utf-8")
                api.tokens = {t.strip() for t in text.replace(",", "\n").splitlines() if t.strip()}
                return self.send_json(200, {"tokens": len(api.tokens)})
            raise ApiError(404, "NotFound", "unknown control endpoint %s %s" % (self.command, path))
        except ApiError as e:
            self.send_status(e)

    def state(self):
        api = self.api
        store = api.store
        objects = {}
        for plural in sorted(api.crds):
            items, _ = store.list(plural)
            objects[plural] = [{
                "namespace": o["metadata"].get("namespace"), "name": o["metadata"]["name"],
                "resourceVersion": o["metadata"]["resourceVersion"],
                "deleting": bool(o["metadata"].get("deletionTimestamp")),
                "phase": (o.get("status") or {}).get("phase"), "state": (o.get("status") or {}).get("state"),
                "labels": o["metadata"].get("labels") or {}} for o in items]
        pods = [{"namespace": p.namespace, "name": p.name, "pool": p.pool, "status": p.status_label,
                 "sandbox": p.sandbox, "phase": p.phase, "root": p.root, "workspace": p.workspace}
                for p in api.operator.pod_list()]
        counts = {k: len(v) for k, v in objects.items()}
        counts["pods"] = len(pods)
        with api.log_lock:
            nreq = api.request_seq
        return {"resourceVersion": str(store.rv), "counts": counts, "objects": objects, "pods": pods,
                "faults": api.faults.spec, "bwrap": bool(api.operator.sidecar.bwrap),
                "podContainers": bool(api.operator.sidecar.bwrap) and not api.operator.sidecar.containers_broken,
                "requests": nreq,
                "down": {"since": api.down_since, "until": api.down_until,
                         "pending": api.down_pending is not None}}


def raise_error_fault(d):
    if d.error == 429:
        raise ApiError(429, "TooManyRequests", "the server has received too many requests and has asked us to "
                       "try again later", {"causes": [{"reason": "UnexpectedServerResponse",
                                                       "message": "injected by fake-arl"}],
                                           "retryAfterSeconds": d.retry_after},
                       headers={"Retry-After": str(d.retry_after)})
    if d.error == 503:
        raise ApiError(503, "ServiceUnavailable", "the server is currently unable to handle the request (injected by fake-arl)")
    raise ApiError(500, "InternalError", "Internal error occurred: injected by fake-arl",
                   {"causes": [{"message": "injected by fake-arl"}]})


def peek_request_line(sock):
    """(method, path, query) of the request waiting on a new plain-HTTP connection, without
    consuming it; (None, None, None) when none arrives at once (or it is TLS)."""
    try:
        sock.settimeout(0.2)
        head = sock.recv(2048, socket.MSG_PEEK)
    except OSError:
        return None, None, None
    m = re.match(rb"([A-Z]+) (/[^ ?]*)\??([^ ]*) HTTP/1", head)
    if not m:
        return None, None, None
    return m.group(1).decode(), m.group(2).decode(), m.group(3).decode()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, api, ssl_ctx=None):
        self.api = api
        self.ssl_ctx = ssl_ctx
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        if self.api.is_down():
            self.api.record_down(*peek_request_line(request))
            try:
                request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            return
        if self.ssl_ctx is not None:
            request.settimeout(10)
            try:
                request = self.ssl_ctx.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                return
            request.settimeout(None)
            try:
                self.RequestHandlerClass(request, client_address, self)
            finally:
                try:
                    request.close()
                except OSError:
                    pass
            return
        self.RequestHandlerClass(request, client_address, self)

    def handle_error(self, request, client_address):
        if self.api.verbose:
            super().handle_error(request, client_address)
