#!/usr/bin/python3
"""fake-gateway: a test stand-in for today's ARL gateway (Lincyaw/agent-env c34cc73,
../shared/arl-gateway.md), Python 3 standard library only.

  python3 tests/fake_gateway/server.py [--port 0] [--port-file F] [--api-key KEY:ROLE]...
      [--no-auth] [--rps N --burst N] [--faults SPEC] [--old-execute] [--redis] ...

Listens on 127.0.0.1 only, prints its URL as the first line of stdout (and writes the
port to --port-file), runs until SIGTERM/SIGINT, then deletes every session's pod and
its temp dir. README.md documents the behaviour, the options and /_fake/*.
"""

import argparse
import faulthandler
import gzip
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gw_core                          # noqa: E402
import gw_faults                        # noqa: E402
from gw_core import GatewayError, pod_container   # noqa: E402

BODY_LIMIT = 10 << 20                   # http.MaxBytesReader on create, execute, download...
# Set by SIGTERM/SIGINT. A plain flag, not a threading.Event: a handler runs in the main thread
# between two bytecodes, possibly inside Event.wait() with the Event's lock held, and
# Event.set() would then wait for that lock for ever (fake_arl/server.py had the same hang;
# here it held a test to ctest's timeout: timeout(1) sends SIGTERM twice, widening the window).
STOP = False

DEFAULTS = {
    "namespace": "arl",
    "admission_timeout": 0.0,           # ADMISSION_QUEUE_TIMEOUT: 0 = until the client leaves
    "alloc_delay": 0.0,                 # seconds an allocation takes (a warm pod: about nothing)
    "max_replicas": 0,                  # sessions a pool may hold at once; 0 = unlimited
    "idle_timeout": 600.0,              # GATEWAY_IDLE_TIMEOUT
    "reap_interval": 30.0,              # the idle reaper's sweep
    "operation_retention": 600.0,       # operations forgotten this long after finishing
    "redis": False,                     # tombstones: GET of a deleted session is 410
    "old_execute": False,               # v0.16-v0.21.3: execute with operationID blocks, 200
    "rps": 2048.0,                      # per-IP token bucket (binary defaults; chart: 100/200)
    "burst": 4096.0,
}

# (method, pattern, endpoint, auth): auth "none", "user", "own" (session owner or admin), "admin"
ROUTES = [
    ("GET", r"/healthz", "healthz", "none"),
    ("POST", r"/v1/sessions", "create", "user"),
    ("GET", r"/v1/sessions", "list", "admin"),
    ("GET", r"/v1/sessions/(?P<id>[^/]+)/?", "get", "user"),
    ("DELETE", r"/v1/sessions/(?P<id>[^/]+)/?", "delete", "own"),
    ("POST", r"/v1/sessions/(?P<id>[^/]+)/execute", "execute", "own"),
    ("GET", r"/v1/sessions/(?P<id>[^/]+)/operations/(?P<op>[^/]+)", "operation", "own"),
    ("POST", r"/v1/sessions/(?P<id>[^/]+)/upload-file", "upload", "own"),
    ("POST", r"/v1/sessions/(?P<id>[^/]+)/download-file", "download", "own"),
    ("GET", r"/v1/sessions/(?P<id>[^/]+)/history", "history", "own"),
    ("GET", r"/v1/sessions/(?P<id>[^/]+)/logs", "logs", "own"),
    ("GET", r"/v1/pools", "pools", "admin"),
]
ROUTES = [(m, re.compile("^" + p + "$"), e, a) for m, p, e, a in ROUTES]
SESSION_SUBTREE = re.compile(r"^/v1/sessions/[^/]+(/.*)?$")   # chi sub-router: auth before 404/405


class BodyTooLarge(Exception):
    pass


class Auth:
    """AUTH_API_KEYS ("k1:admin,k2:user") and AUTH_KEY_FILE (key:role per line, re-read when
    it changes); any role but admin is user. Disabled: no auth, no ownership."""

    def __init__(self, enabled, keys, key_file):
        self.enabled = enabled
        self.static = dict(keys)
        self.key_file = key_file
        self.file_keys = {}
        self.file_mtime = None
        self.mu = threading.Lock()

    @staticmethod
    def parse(text, sep):
        out = {}
        for item in text.split(sep):
            item = item.strip()
            if not item or item.startswith("#"):
                continue
            key, _, role = item.rpartition(":")
            if not key:
                key, role = role, "user"
            out[key.strip()] = "admin" if role.strip() == "admin" else "user"
        return out

    def role(self, key):
        with self.mu:
            if self.key_file:
                try:
                    m = os.stat(self.key_file).st_mtime_ns
                    if m != self.file_mtime:
                        with open(self.key_file) as fh:
                            self.file_keys = self.parse(fh.read(), "\n")
                        self.file_mtime = m
                except OSError:
                    pass
            return self.static.get(key) or self.file_keys.get(key)


class RateLimiter:
    """Token bucket per client IP (golang.org/x/time/rate Allow)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.buckets = {}
        self.mu = threading.Lock()

    def allow(self, ip):
        rps, burst = float(self.cfg["rps"]), float(self.cfg["burst"])
        now = time.monotonic()
        with self.mu:
            tokens, last = self.buckets.get(ip, (burst, now))
            tokens = min(burst, tokens + (now - last) * rps)
            ok = tokens >= 1
            if ok:
                tokens -= 1
            self.buckets[ip] = (tokens, now)
            return ok


class Cut(Exception):
    """The connection was dropped on purpose (a reset fault)."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-arl-gateway"
    sys_version = ""

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        self.server.track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def do_GET(self):
        self.serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    # ---- plumbing ---------------------------------------------------------------------

    def read_body(self, limit=None):
        if self._body is not None:
            return self._body
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        buf = bytearray()
        if "chunked" in te:
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise ConnectionError("client went away")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                if limit is not None and len(buf) + size > limit:
                    self.close_connection = True
                    raise BodyTooLarge()
                buf += self.rfile.read(size)
                self.rfile.readline(16)
        else:
            n = int(self.headers.get("Content-Length") or 0)
            if limit is not None and n > limit:
                self.close_connection = True
                raise BodyTooLarge()
            while len(buf) < n:
                chunk = self.rfile.read(min(1 << 20, n - len(buf)))
                if not chunk:
                    raise ConnectionError("client went away")
                buf += chunk
        self._body = bytes(buf)
        return self._body

    def drain_body(self):
        try:
            self.read_body()
        except (BodyTooLarge, ConnectionError, ValueError):
            self.close_connection = True

    def reset(self):
        """Drops the connection with a TCP RST."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True
        self.status = 0
        raise Cut()

    def head(self, status, headers):
        self.status = status
        lines = ["HTTP/1.1 %d %s" % (status, self.responses.get(status, ("",))[0])]
        lines.append("Date: " + self.date_time_string())
        for k, v in headers:
            lines.append("%s: %s" % (k, v))
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def respond(self, status, body=b"", ctype=None, headers=()):
        """One whole answer (gzip for JSON when asked, as GzipMiddleware does)."""
        if self.fault_after is not None and self.fault_after.key in ("404", "500", "503"):
            f, self.fault_after = self.fault_after, None
            return self.respond(int(f.key), json_bytes({"error": self.fault_text(f)}), "application/json")
        hdrs = list(headers)
        if ctype:
            hdrs.append(("Content-Type", ctype))
        if (body and ctype in ("application/json", "application/x-ndjson")
                and "gzip" in (self.headers.get("Accept-Encoding") or "")):
            body = gzip.compress(body)
            hdrs += [("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")]
        if status != 204:
            hdrs.append(("Content-Length", str(len(body))))
        data = self.head(status, hdrs) + (body if self.command != "HEAD" else b"")
        if self.fault_after is not None:      # reset after: half the answer, then RST
            self.wfile.write(data[:max(1, len(data) // 2)])
            self.wfile.flush()
            self.reset()
        self.wfile.write(data)
        self.wfile.flush()

    def json(self, status, obj, headers=()):
        self.respond(status, json_bytes(obj), "application/json", headers)

    def error(self, status, msg, detail=None, headers=()):
        body = {"error": msg}
        if detail:
            body["detail"] = detail
        self.json(status, body, headers)

    def start_stream(self, status, headers):
        self.wfile.write(self.head(status, list(headers) + [("Transfer-Encoding", "chunked")]))
        self.wfile.flush()
        self.streamed = 0

    def chunk(self, data):
        if not data:
            return
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()
        self.streamed += 1
        if self.fault_after is not None and self.fault_after.key == "reset":
            self.reset()                  # mid-stream: no final chunk, no trailers

    def end_stream(self, trailers=()):
        if self.fault_after is not None and self.fault_after.key == "reset":
            self.reset()
        t = "".join("%s: %s\r\n" % kv for kv in trailers)
        self.wfile.write(b"0\r\n" + t.encode("latin-1") + b"\r\n")
        self.wfile.flush()

    def fault_text(self, f):
        if f.key == "404":
            m = re.match(r"^/v1/sessions/([^/?]+)", self.path)
            return "session %s not found" % m.group(1) if m else "not found"
        return "injected fault"

    def disconnected(self):
        """Did the client go away (what ends the Go request context)?"""
        try:
            r, _, _ = select_read(self.connection)
            if not r:
                return False
            return self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def decode(self, limit=BODY_LIMIT):
        """json.NewDecoder(r.Body).Decode: the first JSON value; errors are 400 with Go's text."""
        try:
            raw = self.read_body(limit)
        except BodyTooLarge:
            raise GatewayError("http: request body too large", 400)
        text = raw.decode("utf-8", "replace").lstrip()
        if not text:
            raise GatewayError("EOF", 400)
        try:
            val, _ = json.JSONDecoder().raw_decode(text)
        except ValueError as e:
            raise GatewayError("invalid character in JSON: %s" % e, 400)
        if not isinstance(val, dict):
            raise GatewayError("json: cannot unmarshal %s into Go value of type struct" % type(val).__name__, 400)
        return val

    # ---- the request ------------------------------------------------------------------

    def serve(self):
        self._body = None
        self.status = None
        self.fault_after = None
        self.streamed = 0
        self.op_id = None
        t0 = time.monotonic()
        path = self.path.split("?", 1)[0]
        query = self.path.split("?", 1)[1] if "?" in self.path else ""
        gw = self.server.gw
        if path.startswith("/_fake/"):
            try:
                self.control(path, query)
            except Cut:
                pass
            return
        endpoint, fault_name = "other", None
        try:
            if not self.server.limiter.allow(self.client_address[0]):
                self.drain_body()
                self.error(429, "rate limit exceeded", headers=[("Retry-After", "1")])
                return
            endpoint, params, auth = self.route(path)
            lat = gw.faults.latency(endpoint)
            if lat:
                time.sleep(lat)
            fault, after = gw.faults.decide(endpoint)
            if fault is not None:
                fault_name = fault.key + (":after" if after else "")
                if not after:
                    if fault.key == "reset":
                        self.reset()
                    self.drain_body()
                    if fault.key == "429":
                        self.error(429, "rate limit exceeded", headers=[("Retry-After", str(fault.retry_after))])
                    else:
                        self.error(int(fault.key), self.fault_text(fault))
                    return
                self.fault_after = fault
            self.dispatch(path, query, endpoint, params, auth)
        except Cut:
            pass
        except (ConnectionError, BrokenPipeError):
            self.close_connection = True
        except Exception as e:          # noqa: BLE001 (chi's Recoverer: 500, empty body)
            sys.stderr.write("fake-gateway: %s %s: %s: %s\n" % (self.command, path, type(e).__name__, e))
            self.close_connection = True
            if self.status is None:
                try:
                    self.respond(500)
                except (OSError, Cut):
                    pass
        finally:
            m = re.match(r"^/v1/sessions/([^/]+)(?:/operations/([^/]+))?", path)
            self.server.log_request_entry({
                "time": time.time(), "method": self.command, "path": path, "query": query,
                "endpoint": endpoint, "session": m.group(1) if m else None,
                "operation": (m.group(2) if m else None) or self.op_id, "status": self.status or 0,
                "fault": fault_name, "duration_ms": round((time.monotonic() - t0) * 1000, 2)})

    def route(self, path):
        """(endpoint, params, auth) or answers 404/405 itself (after auth inside a session's
        subtree, as chi's sub-router with its middleware does) and raises Cut."""
        methods = []
        for m, rx, e, a in ROUTES:
            mt = rx.match(path)
            if mt:
                if m == self.command:
                    return e, mt.groupdict(), a
                methods.append(m)
        if SESSION_SUBTREE.match(path) and self.authenticate("user") is None:
            raise Cut()
        self.drain_body()
        if methods:
            self.respond(405)
        else:
            self.respond(404, b"404 page not found\n", "text/plain; charset=utf-8",
                         [("X-Content-Type-Options", "nosniff")])
        raise Cut()

    def authenticate(self, need):
        """Returns (role, owner hash) or answers 401/403 and returns None."""
        auth = self.server.auth
        if not auth.enabled:
            return ("admin", "")
        h = self.headers.get("Authorization") or ""
        token = h[7:].strip() if h[:7].lower() == "bearer " else ""
        if not token:
            self.drain_body()
            self.error(401, "missing or invalid Authorization header",
                       headers=[("WWW-Authenticate", 'Bearer realm="arl-gateway"')])
            return None
        role = auth.role(token)
        if role is None:
            self.drain_body()
            self.error(401, "invalid API key")
            return None
        if need == "admin" and role != "admin":
            self.drain_body()
            self.error(403, "admin access required")
            return None
        return role, hashlib.sha256(token.encode()).hexdigest()

    def dispatch(self, path, query, endpoint, params, auth):
        gw = self.server.gw
        if auth == "none":
            self.respond(200, b"ok", "text/plain; charset=utf-8")
            return
        who = self.authenticate("admin" if auth == "admin" else "user")
        if who is None:
            return
        role, owner = who
        s = None
        if "id" in params:
            sid = params["id"]
            s = gw.get_session(sid)
            if s is None:
                tomb = gw.tombstone(sid) if endpoint == "get" else None
                if tomb is not None and (role == "admin" or not owner or tomb.owner == owner):
                    self.drain_body()
                    self.error(410, "session %s is no longer active" % sid, "reason=%s deletedAt=%s" % (
                        tomb.deletion_reason, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(tomb.deleted_at))))
                    return
                self.drain_body()
                self.error(404, "session %s not found" % sid)
                return
            if owner and role != "admin" and s.owner != owner:
                self.drain_body()
                self.error(403, "access denied: session owned by another user")
                return
        try:
            getattr(self, "h_" + endpoint)(s, query, owner)
        except GatewayError as e:
            if self.streamed:
                self.close_connection = True
                return
            self.drain_body()
            self.error(e.status or gw_core.status_for(str(e)), str(e))

    # ---- handlers ---------------------------------------------------------------------

    def h_create(self, _s, _q, owner):
        req = self.decode()
        bad = check_types(req, CREATE_TYPES, "CreateSessionRequest")
        if bad:
            raise GatewayError(bad, 400)
        if not req.get("image") and not req.get("profile"):
            raise GatewayError("image or profile is required", 400)
        s = self.server.gw.create_session(req, owner, self.disconnected)
        self.json(201, s.info())

    def h_get(self, s, _q, _o):
        self.json(200, s.info())

    def h_delete(self, s, _q, _o):
        self.drain_body()
        self.server.gw.delete_session(s.id)
        self.respond(204)

    def h_list(self, _s, query, _o):
        q = parse_query(query)
        items = self.server.gw.list_sessions()
        for k in ("profile", "status"):
            if q.get(k):
                items = [s for s in items if (s.profile if k == "profile" else "active") == q[k]]
        start = int(q.get("cursor") or 0) if (q.get("cursor") or "0").isdigit() else 0
        limit = int(q["limit"]) if (q.get("limit") or "").isdigit() and int(q["limit"]) > 0 else 100
        page = items[start:start + limit]
        hdrs = [("X-Next-Cursor", str(start + limit))] if start + limit < len(items) else []
        self.json(200, [{"id": s.id, "image": s.image, "profile": s.profile, "namespace": s.namespace,
                         "status": "active", "createdAt": gw_core.now_rfc3339(s.created),
                         "lastActiveAt": gw_core.now_rfc3339(s.last_active)} for s in page], hdrs)

    def h_pools(self, _s, _q, _o):
        with self.server.gw.mu:         # copied under the lock, written after it
            pools = [p.info() for p in self.server.gw.pools.values()]
        self.json(200, pools)

    def h_logs(self, _s, _q, _o):
        raise GatewayError("log streaming is not supported; use kubectl logs on the session's pod", 500)

    def h_history(self, s, _q, _o):
        with self.server.gw.mu:
            hist = list(s.history)
        self.json(200, hist)

    def h_execute(self, s, _q, _o):
        gw = self.server.gw
        req = self.decode()
        steps = req.get("steps")
        if not isinstance(steps, list) or not steps:
            if steps is not None and not isinstance(steps, list):
                raise GatewayError("json: cannot unmarshal into Go struct field ExecuteRequest.steps", 400)
            raise GatewayError("steps is required", 400)
        for st in steps:
            bad = check_step(st)
            if bad:
                raise GatewayError(bad, 400)
        op_id = req.get("operationID") or ""
        if not isinstance(op_id, str):
            raise GatewayError("json: cannot unmarshal into Go struct field ExecuteRequest.operationID", 400)
        self.op_id = op_id or None
        if self.headers.get("Accept") == "text/event-stream" and not op_id:
            self.execute_sse(s, req)
            return
        if not op_id:
            self.json(200, gw.run_steps(s, req))
            return
        op, _ = gw.get_or_start_operation(s, req)
        if gw.cfg["old_execute"]:
            while not op.done.wait(0.05):       # v0.16-v0.21.3: blocks under the request context
                if self.disconnected():
                    self.close_connection = True
                    raise GatewayError("context canceled")
        if op.status == "done":
            self.json(200, op.result)
        elif op.status == "error":
            raise GatewayError(op.error)
        else:
            self.json(202, {"operationID": op.id, "status": "running"})

    def execute_sse(self, s, req):
        mu = threading.Lock()
        self.start_stream(200, [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"),
                                ("Connection", "keep-alive")])
        broken = []

        def send(event, obj):
            with mu:
                if broken:
                    return
                try:
                    self.chunk(b"event: %s\ndata: %s\n\n" % (event.encode(), json_bytes(obj).rstrip(b"\n")))
                except (Cut, OSError) as e:
                    broken.append(e)

        def on_output(which, data):
            send("output", {"stdout": data.decode("utf-8", "replace") if which == "stdout" else "",
                            "stderr": data.decode("utf-8", "replace") if which == "stderr" else ""})

        self.server.gw.run_steps(s, req, on_output=on_output, on_result=lambda r: send("result", r))
        if broken:
            self.close_connection = True
            raise Cut()
        self.end_stream()

    def h_operation(self, s, _q, _o):
        op = self.server.gw.operation(s, self.op_param())
        if op is None:
            self.error(404, "operation %s not found" % self.op_param())
            return
        with self.server.gw.mu:
            info = op.info()
        self.json(200, info)

    def op_param(self):
        return self.path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]

    def h_upload(self, s, _q, _o):
        path = self.headers.get("X-ARL-Path") or ""
        if not path:
            raise GatewayError("X-ARL-Path header is required", 400)
        data = self.read_body()
        self.json(200, self.server.gw.upload(s, path, data, self.headers.get("X-ARL-SHA256")))

    def h_download(self, s, _q, _o):
        req = self.decode()
        path = req.get("path")
        if not isinstance(path, str) or not path:
            raise GatewayError("path is required", 400)
        base = os.path.basename(path.rstrip("/")) or "download"

        def start():
            self.start_stream(200, [("Content-Type", "application/octet-stream"),
                                    ("Content-Disposition", "attachment; filename=%s" % json.dumps(base)),
                                    ("Trailer", "X-ARL-Size-Bytes"), ("Trailer", "X-ARL-SHA256")])
        try:
            reply = self.server.gw.download(s, path, start, self.chunk)
        except OSError:
            self.close_connection = True        # truncated after streaming began: no trailers
            raise Cut()
        self.end_stream([("X-Arl-Size-Bytes", str(reply["size"])), ("X-Arl-Sha256", reply["sha256"])])

    # ---- /_fake/* ---------------------------------------------------------------------

    def control(self, path, query):
        gw = self.server.gw
        srv = self.server
        body = {}
        if self.command in ("POST", "PUT"):
            raw = self.read_body()
            if raw.strip():
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {"spec": raw.decode().strip()}
        if path == "/_fake/state" and self.command == "GET":
            with gw.mu:
                state = {
                    "generation": gw.generation,
                    "sessions": [{"id": s.id, "image": s.image, "profile": s.profile, "pool": s.pool.name,
                                  "owner": s.owner, "busy": s.busy, "createdAt": gw_core.now_rfc3339(s.created),
                                  "nextIndex": s.next_index, "operations": len(s.operations),
                                  "idleTimeoutSeconds": s.idle_timeout, "running": list(s.running)}
                                 for s in gw.sessions.values()],
                    "pools": [dict(p.info(), managed=p.managed, queued=p.queued,
                                   scaleEvents=[list(e) for e in p.scale_events]) for p in gw.pools.values()],
                    "config": dict(gw.cfg),
                }
            state["faults"] = gw.faults.describe()
            self.json(200, state)
        elif path == "/_fake/sessions" and self.command == "GET":
            self.json(200, [s.id for s in gw.list_sessions()])
        elif path == "/_fake/faults" and self.command == "GET":
            self.json(200, gw.faults.describe())
        elif path == "/_fake/faults" and self.command in ("POST", "PUT"):
            try:
                gw.faults.set(body.get("spec", ""))
            except ValueError as e:
                self.error(400, str(e))
                return
            self.json(200, gw.faults.describe())
        elif path == "/_fake/config" and self.command == "GET":
            self.json(200, gw.cfg)
        elif path == "/_fake/config" and self.command in ("POST", "PATCH", "PUT"):
            bad = [k for k in body if k not in DEFAULTS]
            if bad:
                self.error(400, "unknown config key(s): %s" % ", ".join(sorted(bad)))
                return
            for k, v in body.items():
                gw.cfg[k] = type(DEFAULTS[k])(v)
            self.json(200, gw.cfg)
        elif path == "/_fake/restart" and self.command == "POST":
            n = int(body.get("resetNext") or 0)
            if n > 0:       # the gateway is down for the next n requests (connection reset)
                gw.faults.set(",".join(x for x in (gw.faults.spec, "reset=1:max=%d" % n) if x))
            when = body.get("whenStepRunning")
            if not gw.restart(keep_sessions=bool(body.get("keepSessions")), when_running=when or None,
                              wait_s=float(body.get("waitSeconds") or 60)):
                self.error(409, "no step %sran within %ss: nothing restarted"
                           % ("" if when is True else "%r " % when, body.get("waitSeconds") or 60))
                return
            srv.drop_connections(except_sock=self.connection)
            self.json(200, {"generation": gw.generation})
        elif path == "/_fake/reap" and self.command == "POST":
            gw.reap_idle()
            self.json(200, [s.id for s in gw.list_sessions()])
        elif path == "/_fake/requests" and self.command == "GET":
            with srv.log_mu:
                log = list(srv.request_log)
            self.json(200, log)
        elif path == "/_fake/requests" and self.command == "DELETE":
            with srv.log_mu:
                srv.request_log.clear()
            self.respond(204)
        else:
            self.drain_body()
            self.error(404, "no such control endpoint %s %s" % (self.command, path))


def select_read(sock):
    import select
    return select.select([sock], [], [], 0)


def json_bytes(obj):
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def parse_query(q):
    from urllib.parse import parse_qs
    return {k: v[-1] for k, v in parse_qs(q).items()}


INT32 = "int32"
CREATE_TYPES = {"image": str, "profile": str, "namespace": str, "mode": str, "idleTimeoutSeconds": INT32,
                "allocationTimeoutSeconds": INT32, "allowInternet": bool}


def check_types(obj, types, struct):
    """Go's decode errors for the fields a struct declares (null is always fine)."""
    for k, t in types.items():
        v = obj.get(k)
        if v is None:
            continue
        if t is INT32:
            ok = isinstance(v, int) and not isinstance(v, bool) and -2**31 <= v < 2**31
        else:
            ok = isinstance(v, t)
        if not ok:
            return "json: cannot unmarshal %s into Go struct field %s.%s of type %s" % (
                type(v).__name__, struct, k, {str: "string", bool: "bool"}.get(t, "int"))
    return None


def check_step(st):
    """The JSON types a StepRequest decode accepts."""
    if not isinstance(st, dict):
        return "json: cannot unmarshal into Go struct field ExecuteRequest.steps of type gateway.StepRequest"
    cmd = st.get("command")
    if cmd is not None and (not isinstance(cmd, list) or not all(isinstance(c, str) for c in cmd)):
        return "json: cannot unmarshal into Go struct field StepRequest.steps.command of type []string"
    env = st.get("env")
    if env is not None and (not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values())):
        return "json: cannot unmarshal into Go struct field StepRequest.steps.env of type map[string]string"
    for k in ("timeoutSeconds", "timeout"):
        v = st.get(k)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not -2**31 <= v < 2**31):
            return "json: cannot unmarshal into Go struct field StepRequest.steps.%s of type int32" % k
    for k in ("name", "workDir"):
        if st.get(k) is not None and not isinstance(st[k], str):
            return "json: cannot unmarshal into Go struct field StepRequest.steps.%s of type string" % k
    return None


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, addr, gw, auth, request_log_file=None):
        super().__init__(addr, Handler)
        self.gw = gw
        self.auth = auth
        self.limiter = RateLimiter(gw.cfg)
        self.conns = set()
        self.conns_mu = threading.Lock()
        self.request_log = []
        self.log_mu = threading.Lock()
        self.seq = 0
        self.log_file = open(request_log_file, "a") if request_log_file else None

    def track(self, sock, add):
        with self.conns_mu:
            (self.conns.add if add else self.conns.discard)(sock)

    def drop_connections(self, except_sock=None):
        """A restart: every open connection breaks."""
        with self.conns_mu:
            socks = [c for c in self.conns if c is not except_sock]
        for c in socks:
            try:
                c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def log_request_entry(self, entry):
        with self.log_mu:
            self.seq += 1
            entry["seq"] = self.seq
            self.request_log.append(entry)
            if len(self.request_log) > 100000:
                del self.request_log[:50000]
            if self.log_file:
                self.log_file.write(json.dumps(entry) + "\n")
                self.log_file.flush()

    def handle_error(self, request, client_address):
        if not STOP and not isinstance(sys.exc_info()[1], (ConnectionError, OSError)):
            super().handle_error(request, client_address)


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="fake-gateway", description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    ap.add_argument("--port-file", help="write the port there once listening")
    ap.add_argument("--api-key", action="append", default=[], metavar="KEY:ROLE",
                    help="a key (role admin or user), repeatable; also $AUTH_API_KEYS, $AUTH_KEY_FILE")
    ap.add_argument("--key-file", default=os.environ.get("AUTH_KEY_FILE"), help="key:role per line, re-read on change")
    ap.add_argument("--no-auth", action="store_true", help="AUTH_ENABLED=false: no auth, no ownership")
    ap.add_argument("--rps", type=float, default=DEFAULTS["rps"], help="per-IP rate limit (default 2048)")
    ap.add_argument("--burst", type=float, default=DEFAULTS["burst"], help="per-IP burst (default 4096)")
    ap.add_argument("--faults", default="", help="fault SPEC (gw_faults.py; POST /_fake/faults at run time)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--alloc-delay", type=float, default=0.0, help="seconds each allocation takes")
    ap.add_argument("--admission-timeout", type=float, default=0.0, help="ADMISSION_QUEUE_TIMEOUT seconds (0: none)")
    ap.add_argument("--max-replicas", type=int, default=0, help="sessions a pool may hold at once (0: unlimited)")
    ap.add_argument("--idle-timeout", type=float, default=600.0, help="default idleTimeoutSeconds")
    ap.add_argument("--reap-interval", type=float, default=30.0, help="idle reaper sweep interval")
    ap.add_argument("--operation-retention", type=float, default=600.0, help="seconds an operation is kept after it ends")
    ap.add_argument("--redis", action="store_true", help="keep tombstones: GET of a deleted session is 410")
    ap.add_argument("--old-execute", action="store_true",
                    help="v0.16-v0.21.3: execute with an operationID blocks and answers 200")
    ap.add_argument("--namespace", default="arl")
    ap.add_argument("--pool", action="append", default=[], metavar="NAME=PROFILE:IMAGE[:REPLICAS]",
                    help="an admin-created (profile) pool, never scaled to zero")
    ap.add_argument("--request-log", help="append each request as a JSON line")
    a = ap.parse_args(argv)
    return a


def _stop(_signum, _frame):
    global STOP
    STOP = True


def main(argv=None):
    faulthandler.register(signal.SIGUSR1, all_threads=True)    # kill -USR1: every thread's stack
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    a = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        faults = gw_faults.Faults(a.faults, seed=a.seed)
    except ValueError as e:
        raise SystemExit("fake-gateway: --faults: %s" % e)
    keys = {}
    for text, sep in [(os.environ.get("AUTH_API_KEYS", ""), ",")] + [(k, ",") for k in a.api_key]:
        keys.update(Auth.parse(text, sep))
    enabled = not a.no_auth and os.environ.get("AUTH_ENABLED", "true").lower() != "false"
    pools = []
    for spec in a.pool:
        name, _, rest = spec.partition("=")
        parts = rest.split(":")
        if not name or len(parts) < 2:
            raise SystemExit("fake-gateway: --pool %s: expected NAME=PROFILE:IMAGE[:REPLICAS]" % spec)
        reps = 1
        if len(parts) > 2 and parts[-1].isdigit():
            reps = int(parts.pop())
        pools.append((name, parts[0], ":".join(parts[1:]), reps))
    cfg = dict(DEFAULTS)
    cfg.update(namespace=a.namespace, admission_timeout=a.admission_timeout, alloc_delay=a.alloc_delay,
               max_replicas=a.max_replicas, idle_timeout=a.idle_timeout, reap_interval=a.reap_interval,
               operation_retention=a.operation_retention, redis=a.redis, old_execute=a.old_execute,
               rps=a.rps, burst=a.burst)

    pod_container.sweep_stale_dirs()
    # named like the fake ARL server's: a next server of either kind removes it after a SIGKILL
    tmp = tempfile.mkdtemp(prefix="fake-arl.%d." % os.getpid())
    try:
        os.makedirs(os.path.join(tmp, "pods"))
        gw = gw_core.Gateway(tmp, cfg, faults)
        for name, profile, image, reps in pools:
            gw.add_profile_pool(name, profile, image, reps)
        server = Server(("127.0.0.1", a.port), gw, Auth(enabled, keys, a.key_file), a.request_log)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    port = server.server_address[1]
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    t.start()
    try:
        if a.port_file:
            with open(a.port_file + ".tmp", "w") as fh:
                fh.write("%d\n" % port)
            os.rename(a.port_file + ".tmp", a.port_file)
        sys.stdout.write("http://127.0.0.1:%d\n" % port)
        sys.stdout.flush()
        last_reap = time.monotonic()
        while not STOP:
            time.sleep(0.2)
            if time.monotonic() - last_reap >= gw.cfg["reap_interval"]:
                last_reap = time.monotonic()
                gw.reap_idle()
    finally:
        # A shutdown that hangs (a request's thread that never ends: server_close joins them)
        # must not hold a test until ctest's timeout: after 60 s, every thread's stack to
        # stderr and exit (the pods die with us; the next server removes the temp dir).
        faulthandler.dump_traceback_later(60, exit=True)
        gw.stopping.set()           # a create that ends now ends its own pod
        server.shutdown()
        server.drop_connections()   # wakes the handlers reading kept-alive connections
        server.server_close()       # joins the handlers (daemon or not)
        gw.stop_all()
        pod_container.rmtree(tmp)
        if a.port_file:
            try:
                os.unlink(a.port_file)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
