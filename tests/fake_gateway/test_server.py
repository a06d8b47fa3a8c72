#!/usr/bin/python3
"""Tests of the fake ARL gateway (server.py) against ../shared/arl-gateway.md.

Run: /usr/bin/python3 tests/fake_gateway/test_server.py [-v] [TestClass.test_name]
(ctest: integration.fake_gateway, label gateway). One server is started for the whole
run; tests switch its behaviour through /_fake/config and /_fake/faults, delete what they
create, and check at the end that no session, pod process or temp dir is left.
"""

import hashlib
import json
import os
import random
import socket
import subprocess
import sys
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ADMIN, USER, OTHER = "adm-key", "user-key", "other-key"
SRV = None                          # (process, host, port)


def start_server(*extra):
    proc = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "server.py"), "--port", "0",
                             "--api-key", ADMIN + ":admin", "--api-key", USER + ":user",
                             "--api-key", OTHER + ":user", "--reap-interval", "3600"] + list(extra),
                            stdout=subprocess.PIPE, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    line = proc.stdout.readline().decode().strip()
    proc.stdout.close()
    if not line.startswith("http://127.0.0.1:"):
        proc.kill()
        proc.wait()
        raise RuntimeError("fake gateway did not start: %r" % line)
    return proc, "127.0.0.1", int(line.rsplit(":", 1)[1])


class Resp:
    def __init__(self, status, headers, body, trailers=None, complete=True):
        self.status = status
        self.headers = headers          # list of (lowercased name, value)
        self.body = body
        self.trailers = trailers or {}
        self.complete = complete        # the whole message arrived (chunked: the final chunk)

    def header(self, name):
        vals = [v for k, v in self.headers if k == name.lower()]
        return vals[0] if vals else None

    def headers_all(self, name):
        return [v for k, v in self.headers if k == name.lower()]

    def json(self):
        return json.loads(self.body)


def request(method, path, body=None, key=USER, headers=None, timeout=60):
    """A raw HTTP/1.1 request (http.client hides trailers and cut chunked bodies)."""
    _, host, port = SRV
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    hdrs = {"Host": "%s:%d" % (host, port), "Connection": "close"}
    if key:
        hdrs["Authorization"] = "Bearer " + key
    if body is not None:
        hdrs["Content-Length"] = str(len(body))
    hdrs.update(headers or {})
    msg = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in hdrs.items()) + "\r\n"
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(msg.encode() + (body or b""))
        f = s.makefile("rb")
        status_line = f.readline()
        if not status_line:
            raise ConnectionResetError("no answer")
        status = int(status_line.split()[1])
        headers = []
        while True:
            line = f.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers.append((k.strip().lower(), v.strip()))
        h = dict(headers)
        if method == "HEAD" or status in (204, 304):
            return Resp(status, headers, b"")
        if "chunked" in h.get("transfer-encoding", ""):
            data, trailers = bytearray(), {}
            while True:
                line = f.readline()
                if not line:
                    return Resp(status, headers, bytes(data), trailers, complete=False)
                n = int(line.strip().split(b";")[0], 16)
                if n == 0:
                    while True:
                        t = f.readline()
                        if t in (b"\r\n", b"\n", b""):
                            break
                        k, _, v = t.decode("latin-1").partition(":")
                        trailers[k.strip().lower()] = v.strip()
                    return Resp(status, headers, bytes(data), trailers)
                chunk = f.read(n)
                f.readline()
                data += chunk
                if len(chunk) < n:
                    return Resp(status, headers, bytes(data), trailers, complete=False)
        n = int(h.get("content-length", "0"))
        data = f.read(n)
        return Resp(status, headers, data, complete=len(data) == n)
    finally:
        s.close()


def control(path, body=None, method=None):
    return request(method or ("POST" if body is not None else "GET"), "/_fake/" + path, body, key=None)


def set_config(**kw):
    r = control("config", kw)
    assert r.status == 200, r.body


def set_faults(spec):
    r = control("faults", {"spec": spec})
    assert r.status == 200, r.body


def create(key=USER, **body):
    body.setdefault("image", "python:3.11")
    r = request("POST", "/v1/sessions", body, key=key)
    assert r.status == 201, (r.status, r.body)
    return r.json()["id"]


def delete(sid, key=USER):
    return request("DELETE", "/v1/sessions/%s" % sid, key=key).status


def execute(sid, steps, key=USER, **extra):
    body = {"steps": steps}
    body.update(extra)
    return request("POST", "/v1/sessions/%s/execute" % sid, body, key=key)


def sh(name, script, **kw):
    d = {"name": name, "command": ["sh", "-c", script]}
    d.update(kw)
    return d


def poll(sid, op, until=("done", "error"), key=USER):
    """Polls an operation until its status is in until (bounded by the step's own end)."""
    for _ in range(6000):
        r = request("GET", "/v1/sessions/%s/operations/%s" % (sid, op), key=key)
        if r.status != 200 or r.json()["status"] in until:
            return r
        time.sleep(0.02)
    raise AssertionError("operation %s never reached %s" % (op, until))


class Base(unittest.TestCase):
    def setUp(self):
        self.sids = []
        set_faults("")
        set_config(rps=2048.0, burst=4096.0, redis=False, old_execute=False, operation_retention=600.0,
                   alloc_delay=0.0, admission_timeout=0.0, max_replicas=0)

    def tearDown(self):
        set_faults("")
        for sid in self.sids:
            delete(sid, key=ADMIN)

    def session(self, key=USER, **body):
        sid = create(key, **body)
        self.sids.append(sid)
        return sid


class RoutingAndAuth(Base):
    def test_healthz_needs_no_key(self):
        r = request("GET", "/healthz", key=None)
        self.assertEqual((r.status, r.body), (200, b"ok"))

    def test_missing_key_is_401_with_www_authenticate(self):
        r = request("POST", "/v1/sessions", {"image": "x"}, key=None)
        self.assertEqual(r.status, 401)
        self.assertEqual(r.header("WWW-Authenticate"), 'Bearer realm="arl-gateway"')
        self.assertEqual(r.json(), {"error": "missing or invalid Authorization header"})
        self.assertEqual(r.header("Content-Type"), "application/json")

    def test_bearer_prefix_is_case_insensitive_and_unknown_key_is_401(self):
        r = request("GET", "/v1/sessions/nope", key=None, headers={"Authorization": "bearer " + USER})
        self.assertEqual(r.status, 404)
        r = request("GET", "/v1/sessions/nope", key="wrong")
        self.assertEqual((r.status, r.json()), (401, {"error": "invalid API key"}))

    def test_admin_routes_refuse_users(self):
        r = request("GET", "/v1/sessions", key=USER)
        self.assertEqual((r.status, r.json()), (403, {"error": "admin access required"}))

    def test_unknown_route_is_plain_404_and_wrong_method_405_empty(self):
        r = request("GET", "/v1/nothing", key=None)
        self.assertEqual((r.status, r.body), (404, b"404 page not found\n"))
        self.assertTrue(r.header("Content-Type").startswith("text/plain"))
        r = request("PUT", "/v1/sessions", b"{}", key=USER)
        self.assertEqual((r.status, r.body), (405, b""))
        for path in ("/v1/sessions/x/stdin", "/v1/sessions/x/files/a"):   # removed routes
            self.assertEqual(request("POST", path, b"{}").status, 404)

    def test_session_subtree_authenticates_before_404(self):
        r = request("POST", "/v1/sessions/x/stdin", b"{}", key=None)
        self.assertEqual(r.status, 401)

    def test_list_sessions_pages_with_next_cursor(self):
        a, b = self.session(), self.session(key=OTHER)
        r = request("GET", "/v1/sessions?limit=1", key=ADMIN)
        self.assertEqual(r.status, 200)
        first = r.json()
        self.assertEqual(len(first), 1)
        cur = r.header("X-Next-Cursor")
        self.assertTrue(cur)
        seen = [first[0]["id"]]
        while cur:
            r = request("GET", "/v1/sessions?limit=1&cursor=" + cur, key=ADMIN)
            seen += [x["id"] for x in r.json()]
            cur = r.header("X-Next-Cursor")
        self.assertTrue({a, b} <= set(seen))

    def test_logs_is_always_500(self):
        sid = self.session()
        r = request("GET", "/v1/sessions/%s/logs" % sid)
        self.assertEqual(r.status, 500)
        self.assertIn("log streaming is not supported", r.json()["error"])


class Sessions(Base):
    def test_create_needs_image_or_profile(self):
        r = request("POST", "/v1/sessions", {"idleTimeoutSeconds": 5})
        self.assertEqual((r.status, r.json()), (400, {"error": "image or profile is required"}))

    def test_bad_json_and_body_over_10_mib_are_400(self):
        self.assertEqual(request("POST", "/v1/sessions", b"{nope").status, 400)
        self.assertEqual(request("POST", "/v1/sessions", b"").status, 400)
        big = b'{"image":"x","pad":"' + b"a" * (10 << 20) + b'"}'
        r = request("POST", "/v1/sessions", big)
        self.assertEqual((r.status, r.json()), (400, {"error": "http: request body too large"}))
        self.assertEqual(control("sessions").json(), [])

    def test_wrong_field_types_are_400(self):
        for body in ({"image": 1}, {"image": "x", "idleTimeoutSeconds": "5"},
                     {"image": "x", "allowInternet": "no"}, {"image": "x", "allocationTimeoutSeconds": 1.5}):
            r = request("POST", "/v1/sessions", body)
            self.assertEqual(r.status, 400, body)
            self.assertIn("cannot unmarshal", r.json()["error"])
        self.assertEqual(control("sessions").json(), [])

    def test_malformed_requests_do_not_break_the_server(self):
        _, host, port = SRV
        for raw in (b"POST /v1/sessions HTTP/1.1\r\nAuthorization: Bearer %s\r\nContent-Length: x\r\n\r\n",
                    b"POST /v1/sessions HTTP/1.1\r\nAuthorization: Bearer %s\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"):
            s = socket.create_connection((host, port), timeout=30)
            s.sendall(raw % USER.encode())
            self.assertIn(s.recv(100)[:12], (b"HTTP/1.1 500", b"HTTP/1.1 400", b""))
            s.close()
        self.assertEqual(request("GET", "/healthz", key=None).status, 200)

    def test_unknown_profile_is_500_and_foreign_namespace_403(self):
        r = request("POST", "/v1/sessions", {"profile": "nosuch"})
        self.assertEqual(r.status, 500)
        self.assertIn("no pool found for profile", r.json()["error"])
        r = request("POST", "/v1/sessions", {"image": "x", "namespace": "elsewhere"})
        self.assertEqual(r.status, 403)

    def test_create_get_delete(self):
        r = request("POST", "/v1/sessions", {"image": "docker.io/library/python", "unknownField": 1})
        self.assertEqual(r.status, 201)
        info = r.json()
        self.sids.append(info["id"])
        self.assertEqual(info["image"], "python:latest")
        self.assertEqual(info["profile"], "default")
        self.assertEqual(info["status"], "active")
        for k in ("id", "sandboxName", "namespace", "podIP", "podName", "createdAt"):
            self.assertIn(k, info)
        self.assertLessEqual(len(info["id"]), 63)
        r = request("GET", "/v1/sessions/" + info["id"])
        self.assertEqual((r.status, r.json()["id"]), (200, info["id"]))
        self.assertEqual(delete(info["id"]), 204)
        self.assertEqual(delete(info["id"]), 404)
        r = request("GET", "/v1/sessions/" + info["id"])
        self.assertEqual((r.status, r.json()), (404, {"error": "session %s not found" % info["id"]}))

    def test_get_after_delete_is_410_with_redis(self):
        set_config(redis=True)
        sid = create()
        self.assertEqual(delete(sid), 204)
        r = request("GET", "/v1/sessions/" + sid)
        self.assertEqual(r.status, 410)
        self.assertEqual(r.json()["error"], "session %s is no longer active" % sid)
        self.assertIn("reason=", r.json()["detail"])
        self.assertEqual(delete(sid), 404)

    def test_ownership(self):
        sid = self.session()
        for method, path, body in (("GET", "", None), ("DELETE", "", None),
                                   ("POST", "/execute", {"steps": [sh("a", "true")]}),
                                   ("POST", "/download-file", {"path": "/etc/hostname"})):
            r = request(method, "/v1/sessions/%s%s" % (sid, path), body, key=OTHER)
            self.assertEqual((r.status, r.json()), (403, {"error": "access denied: session owned by another user"}),
                             path)
        self.assertEqual(request("GET", "/v1/sessions/" + sid, key=ADMIN).status, 200)
        self.assertEqual(execute(sid, [sh("a", "true")], key=ADMIN).status, 200)

    def test_pool_scales_to_zero_when_its_last_session_goes(self):
        a, b = create(image="alpine:3.20"), create(image="alpine:3.20")

        def pool():
            pools = [p for p in request("GET", "/v1/pools", key=ADMIN).json() if p["image"] == "alpine:3.20"]
            self.assertEqual(len(pools), 1)
            return pools[0]
        self.assertEqual((pool()["allocatedReplicas"], pool()["state"]), (2, "running"))
        self.assertGreaterEqual(pool()["replicas"], 2)
        self.assertEqual(delete(a), 204)
        self.assertEqual((pool()["allocatedReplicas"], pool()["state"]), (1, "running"))
        self.assertEqual(delete(b), 204)
        self.assertEqual((pool()["replicas"], pool()["state"]), (0, "stopped"))
        c = create(image="alpine:3.20")          # a cold start scales it up again
        self.assertEqual(pool()["state"], "running")
        self.assertEqual(delete(c), 204)

    def test_allocation_timeout_is_500(self):
        set_faults("alloc-hang=1:max=1")
        r = request("POST", "/v1/sessions", {"image": "x", "allocationTimeoutSeconds": 1})
        self.assertEqual(r.status, 500)
        self.assertTrue(r.json()["error"].startswith("pool at maximum capacity: queued for "), r.body)
        self.assertEqual(control("sessions").json(), [])

    def test_capacity_queues_until_a_session_is_deleted(self):
        set_config(max_replicas=1)
        a = create(image="cap:1")
        r = request("POST", "/v1/sessions", {"image": "cap:1", "allocationTimeoutSeconds": 1})
        self.assertEqual(r.status, 500)
        self.assertIn("pool at maximum capacity", r.json()["error"])
        self.assertEqual(delete(a), 204)
        b = create(image="cap:1")
        self.assertEqual(delete(b), 204)

    def test_client_leaving_ends_an_unbounded_allocation(self):
        set_faults("alloc-hang=1:max=1")
        _, host, port = SRV
        s = socket.create_connection((host, port))
        body = b'{"image":"leave:1"}'
        s.sendall(b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                  b"Content-Length: %d\r\n\r\n%s" % (USER.encode(), len(body), body))
        for _ in range(5000):                   # the request is queued in its pool
            pools = [p for p in control("state").json()["pools"] if p["image"] == "leave:1"]
            if pools and pools[0]["queued"] == 1:
                break
            time.sleep(0.01)
        s.close()
        for _ in range(5000):
            pools = [p for p in control("state").json()["pools"] if p["image"] == "leave:1"]
            if pools[0]["queued"] == 0:
                break
            time.sleep(0.01)
        self.assertEqual(pools[0]["queued"], 0)
        self.assertEqual(pools[0]["state"], "stopped")
        self.assertEqual(control("sessions").json(), [])

    def test_slow_allocation_queues_the_create(self):
        import threading
        set_faults("slow-alloc=1s")
        box = []
        t = threading.Thread(target=lambda: box.append(request("POST", "/v1/sessions", {"image": "slow:1"})))
        t.start()
        seen = False
        for _ in range(5000):
            pools = [p for p in control("state").json()["pools"] if p["image"] == "slow:1"]
            if pools and pools[0]["queued"] == 1:
                seen = True
                break
            if box:
                break
            time.sleep(0.005)
        t.join()
        self.assertTrue(seen, "the create never waited in its pool's queue")
        self.assertEqual(box[0].status, 201)
        self.sids.append(box[0].json()["id"])

    def test_no_reaping_while_a_step_runs(self):
        sid = self.session(idleTimeoutSeconds=1)
        self.assertEqual(execute(sid, [sh("a", "sleep 3")], operationID="op-idle").status, 202)
        while request("GET", "/v1/sessions/%s/operations/op-idle" % sid).json()["status"] == "running":
            self.assertIn(sid, control("reap", {}).json())
            time.sleep(0.05)

    def test_idle_session_is_reaped(self):
        sid = create(idleTimeoutSeconds=1)
        t0 = time.monotonic()
        while sid in control("reap", {}).json():
            self.assertLess(time.monotonic() - t0, 120)
            time.sleep(0.1)
        self.assertEqual(request("GET", "/v1/sessions/" + sid).status, 404)


class Execute(Base):
    def test_all_steps_run_and_errors_are_exit_1(self):
        sid = self.session()
        r = execute(sid, [sh("fail", "echo out; echo err >&2; exit 3"), {"name": "missing", "command": ["nosuch-binary"]},
                          sh("after", "pwd; readlink /proc/self/fd/0; echo $X", env={"X": "val"})])
        self.assertEqual(r.status, 200)
        resp = r.json()
        self.assertEqual(resp["sessionID"], sid)
        self.assertNotIn("operationID", resp)
        res = resp["results"]
        self.assertEqual([x["index"] for x in res], [0, 1, 2])
        self.assertEqual([x["snapshot_id"] for x in res], ["0", "1", "2"])
        self.assertEqual(res[0]["output"], {"stdout": "out\n", "stderr": "err\n", "exit_code": 3})
        self.assertEqual(res[1]["output"]["exit_code"], 1)
        self.assertTrue(res[1]["output"]["stderr"].startswith("executor error: [2] No such file or directory"))
        self.assertEqual(res[2]["output"], {"stdout": "/\n/dev/null\nval\n", "stderr": "", "exit_code": 0})
        self.assertEqual(res[2]["input"], sh("after", "pwd; readlink /proc/self/fd/0; echo $X", env={"X": "val"}))
        for k in ("name", "duration_ms", "timestamp"):
            self.assertIn(k, res[0])

    def test_timeout_kills_the_direct_child_only_and_is_exit_1(self):
        sid = self.session()
        r = execute(sid, [sh("slow", "sleep 600 & echo $! > /tmp/bg; exec sleep 600", timeoutSeconds=1),
                          sh("bg-alive", "kill -0 $(cat /tmp/bg) && echo alive")])
        res = r.json()["results"]
        self.assertEqual(res[0]["output"]["exit_code"], 1)
        self.assertEqual(res[0]["output"]["stderr"], "")
        self.assertEqual(res[1]["output"], {"stdout": "alive\n", "stderr": "", "exit_code": 0})

    def test_steps_share_one_persistent_container(self):
        sid = self.session()
        r = execute(sid, [sh("a", "mkdir -p /opt/x && echo 1 > /opt/x/f && echo 2 > /tmp/t && touch /usr/local/bin/tool")])
        self.assertEqual(r.json()["results"][0]["output"]["exit_code"], 0, r.body)
        r = execute(sid, [sh("b", "cat /opt/x/f /tmp/t; ls /usr/local/bin/tool; id -u; echo $$")])
        out = r.json()["results"][0]["output"]
        self.assertEqual(out["exit_code"], 0, out)
        self.assertTrue(out["stdout"].startswith("1\n2\n/usr/local/bin/tool\n0\n"), out)
        self.assertFalse(os.path.exists("/usr/local/bin/tool"))     # the host's /usr/local is untouched
        r = execute(sid, [sh("w", "echo kept > /workspace/f; stat -c %a /workspace")])
        self.assertEqual(r.json()["results"][0]["output"]["stdout"], "777\n")    # the workspace emptyDir
        r = execute(sid, [{"name": "r", "command": ["cat", "f"], "workDir": "/workspace"}])
        self.assertEqual(r.json()["results"][0]["output"]["stdout"], "kept\n")
        other = self.session()                  # another session sees none of it
        out = execute(other, [sh("c", "cat /opt/x/f")]).json()["results"][0]["output"]
        self.assertNotEqual(out["exit_code"], 0)

    def test_allow_internet_false_has_no_network(self):
        probe = ("import socket; s = socket.socket(); s.settimeout(5); "
                 "print(s.connect_ex(('127.0.0.1', %d)) == 0)" % SRV[2])
        out = [execute(self.session(**kw), [{"name": "net", "command": ["python3", "-c", probe]}]).json()
               ["results"][0]["output"] for kw in ({}, {"allowInternet": True}, {"allowInternet": False})]
        self.assertEqual([o["stdout"] for o in out], ["True\n", "True\n", "False\n"], out)
        pools = {p["name"] for p in request("GET", "/v1/pools", key=ADMIN).json() if p["image"] == "python:3.11"}
        self.assertEqual(len(pools), 2)         # noInternet is a pool of its own

    def test_steps_is_required_and_bad_types_are_400(self):
        sid = self.session()
        self.assertEqual(execute(sid, []).json(), {"error": "steps is required"})
        self.assertEqual(execute(sid, []).status, 400)
        self.assertEqual(execute(sid, [{"name": "a", "command": "echo"}]).status, 400)
        self.assertEqual(request("POST", "/v1/sessions/%s/execute" % sid, b"[1").status, 400)
        self.assertEqual(execute("no-such-session", [sh("a", "true")]).status, 404)

    def test_operation_202_poll_done_and_same_id_answers(self):
        sid = self.session()
        op = str(uuid.uuid4())
        steps = [sh("wait", "while [ ! -f /tmp/go ]; do sleep 0.02; done; echo waited")]
        r = execute(sid, steps, operationID=op)
        self.assertEqual((r.status, r.json()), (202, {"operationID": op, "status": "running"}))
        r = request("GET", "/v1/sessions/%s/operations/%s" % (sid, op))
        self.assertEqual((r.status, r.json()["status"]), (200, "running"))
        self.assertNotIn("result", r.json())
        r = execute(sid, steps, operationID=op)         # the same operation, still running
        self.assertEqual(r.status, 202)
        r = execute(sid, [sh("other", "true")], operationID=op)
        self.assertEqual(r.status, 500)
        self.assertEqual(r.json()["error"], "operation %s already exists with different request" % op)
        self.assertEqual(execute(sid, [sh("go", "touch /tmp/go")]).status, 200)
        info = poll(sid, op).json()
        self.assertEqual(info["status"], "done")
        self.assertEqual(info["operationID"], op)
        self.assertEqual(info["sessionID"], sid)
        for k in ("createdAt", "startedAt", "finishedAt"):
            self.assertIn(k, info)
        result = info["result"]
        self.assertEqual(result["operationID"], op)
        self.assertEqual(result["results"][0]["output"]["stdout"], "waited\n")
        r = execute(sid, steps, operationID=op)         # finished: 200 with the result, no re-run
        self.assertEqual((r.status, r.json()), (200, result))
        r = request("GET", "/v1/sessions/%s/operations/nope" % sid)
        self.assertEqual(r.status, 404)

    def test_operations_are_forgotten_after_retention(self):
        set_config(operation_retention=0.0)
        sid = self.session()
        op = "op-retention"
        r = execute(sid, [sh("a", "echo 1")], operationID=op)
        self.assertIn(r.status, (200, 202))
        poll(sid, op, until=("done", "error", "gone"))
        self.assertEqual(request("GET", "/v1/sessions/%s/operations/%s" % (sid, op)).status, 404)
        r = execute(sid, [sh("a", "echo 1")], operationID=op)     # a re-POST runs the step again
        self.assertIn(r.status, (200, 202))

    def test_old_deployment_blocks_and_answers_200(self):
        set_config(old_execute=True)
        sid = self.session()
        r = execute(sid, [sh("a", "sleep 0.2; echo old")], operationID="op-old")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["operationID"], "op-old")
        self.assertEqual(r.json()["results"][0]["output"]["stdout"], "old\n")

    def test_stuck_operation_stays_running(self):
        set_faults("stuck-op=1:max=1")
        sid = self.session()
        r = execute(sid, [sh("a", "touch /tmp/ran")], operationID="op-stuck")
        self.assertEqual(r.status, 202)
        check = execute(sid, [sh("b", "test -e /tmp/ran")]).json()["results"][0]
        self.assertEqual(check["output"]["exit_code"], 1)          # it never ran
        self.assertEqual(request("GET", "/v1/sessions/%s/operations/op-stuck" % sid).json()["status"], "running")

    def test_sse_frames(self):
        sid = self.session()
        steps = [sh("a", "echo one; echo e >&2; echo two"), sh("b", "exit 4")]
        r = request("POST", "/v1/sessions/%s/execute" % sid, {"steps": steps},
                    headers={"Accept": "text/event-stream"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Content-Type"), "text/event-stream")
        self.assertTrue(r.complete)
        frames = [f for f in r.body.decode().split("\n\n") if f]
        events = []
        for f in frames:
            lines = f.split("\n")
            self.assertEqual(len(lines), 2, f)
            self.assertTrue(lines[0].startswith("event: ") and lines[1].startswith("data: "), f)
            events.append((lines[0][7:], json.loads(lines[1][6:])))
        kinds = [e for e, _ in events]
        self.assertEqual(kinds.count("result"), 2)
        self.assertEqual(kinds[-1], "result")                      # no terminal event
        self.assertEqual(set(kinds), {"output", "result"})
        out = "".join(d["stdout"] for e, d in events if e == "output")
        err = "".join(d["stderr"] for e, d in events if e == "output")
        self.assertEqual((out, err), ("one\ntwo\n", "e\n"))
        results = [d for e, d in events if e == "result"]
        self.assertEqual([x["output"]["exit_code"] for x in results], [0, 4])
        # with an operationID the Accept header does not matter
        r = request("POST", "/v1/sessions/%s/execute" % sid, {"steps": steps, "operationID": "op-sse"},
                    headers={"Accept": "text/event-stream"})
        self.assertIn(r.status, (200, 202))
        self.assertEqual(r.header("Content-Type"), "application/json")


class More(Base):
    def test_gzip_for_json_only(self):
        sid = self.session()
        r = request("GET", "/v1/sessions/" + sid, headers={"Accept-Encoding": "gzip"})
        self.assertEqual(r.header("Content-Encoding"), "gzip")
        import gzip
        self.assertEqual(json.loads(gzip.decompress(r.body))["id"], sid)
        r = request("GET", "/healthz", key=None, headers={"Accept-Encoding": "gzip"})
        self.assertEqual((r.header("Content-Encoding"), r.body), (None, b"ok"))

    def test_operations_go_with_their_session(self):
        sid = create()
        r = execute(sid, [sh("wait", "while :; do sleep 0.02; done"), sh("next", "true")], operationID="op-del")
        self.assertEqual(r.status, 202)
        self.assertEqual(delete(sid), 204)
        r = request("GET", "/v1/sessions/%s/operations/op-del" % sid)
        self.assertEqual((r.status, r.json()), (404, {"error": "session %s not found" % sid}))

    def test_key_file_port_file_and_sigkill(self):
        import tempfile
        d = tempfile.mkdtemp(prefix="fake-gw-test.")
        try:
            keys = os.path.join(d, "keys")
            with open(keys, "w") as fh:
                fh.write("# keys\nfile-key:user\n")
            port_file = os.path.join(d, "port")
            proc = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "server.py"), "--key-file", keys,
                                     "--port-file", port_file], stdout=subprocess.PIPE)
            try:
                url = proc.stdout.readline().decode().strip()
                with open(port_file) as fh:
                    self.assertEqual(url, "http://127.0.0.1:%d" % int(fh.read()))
                global SRV
                saved, SRV = SRV, (None, "127.0.0.1", int(url.rsplit(":", 1)[1]))
                try:
                    self.assertEqual(request("POST", "/v1/sessions", {"image": "x"}, key="new-key").status, 401)
                    with open(keys + ".tmp", "w") as fh:
                        fh.write("new-key:admin\n")
                    os.rename(keys + ".tmp", keys)
                    sid = create(key="new-key")
                    self.assertEqual(request("GET", "/v1/sessions", key="new-key").status, 200)
                    marker = "%d.%d" % (os.getpid(), proc.pid)
                    r = execute(sid, [sh("bg", "sh -c 'sleep 4321; : %s' >/dev/null 2>&1 &" % marker)],
                                key="new-key")
                    self.assertEqual(r.json()["results"][0]["output"]["exit_code"], 0)
                    self.assertTrue(processes_with(marker))
                finally:
                    SRV = saved
            finally:
                proc.kill()                         # SIGKILL: the pods must go with it
                proc.wait()
                proc.stdout.close()
            for _ in range(500):
                if not processes_with(marker):
                    break
                time.sleep(0.02)
            self.assertEqual(processes_with(marker), [])
            # the next server removes the temp dir of the killed one
            nxt = start_server()
            nxt[0].terminate()
            nxt[0].wait()
            self.assertEqual([x for x in os.listdir("/tmp") if x.startswith("fake-arl.%d." % proc.pid)], [])
        finally:
            import shutil
            shutil.rmtree(d, ignore_errors=True)


def processes_with(text):
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as fh:
                    if text.encode() in fh.read():
                        found.append(int(pid))
            except OSError:
                pass
    return found


class Files(Base):
    def test_upload_download_with_sha_and_trailers(self):
        sid = self.session()
        data = random.Random(7).randbytes(300 * 1024)
        sha = hashlib.sha256(data).hexdigest()
        r = request("POST", "/v1/sessions/%s/upload-file" % sid, data,
                    headers={"X-ARL-Path": "/deep/new/dir/blob.bin", "X-ARL-SHA256": sha})
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json(), {"path": "/deep/new/dir/blob.bin", "bytesWritten": len(data), "sha256": sha})
        out = execute(sid, [sh("stat", "stat -c %a /deep/new/dir/blob.bin")]).json()["results"][0]
        self.assertEqual(out["index"], 1)                # the upload took index 0
        self.assertEqual(out["output"]["stdout"], "644\n")
        r = request("POST", "/v1/sessions/%s/download-file" % sid, {"path": "/deep/new/dir/blob.bin"})
        self.assertEqual(r.status, 200)
        self.assertTrue(r.complete)
        self.assertEqual(r.header("Content-Type"), "application/octet-stream")
        self.assertEqual(r.header("Content-Disposition"), 'attachment; filename="blob.bin"')
        self.assertEqual(r.header("Transfer-Encoding"), "chunked")
        self.assertEqual(sorted(r.headers_all("Trailer")), ["X-ARL-SHA256", "X-ARL-Size-Bytes"])
        self.assertEqual(r.body, data)
        self.assertEqual(r.trailers, {"x-arl-size-bytes": str(len(data)), "x-arl-sha256": sha})

    def test_empty_file_download_has_trailers(self):
        sid = self.session()
        execute(sid, [sh("a", ": > /tmp/empty")])
        r = request("POST", "/v1/sessions/%s/download-file" % sid, {"path": "/tmp/empty"})
        self.assertEqual((r.status, r.body), (200, b""))
        self.assertEqual(r.trailers["x-arl-size-bytes"], "0")

    def test_upload_errors(self):
        sid = self.session()
        r = request("POST", "/v1/sessions/%s/upload-file" % sid, b"x")
        self.assertEqual((r.status, r.json()), (400, {"error": "X-ARL-Path header is required"}))
        r = request("POST", "/v1/sessions/%s/upload-file" % sid, b"x", headers={"X-ARL-Path": "rel/x"})
        self.assertEqual(r.status, 500)
        self.assertIn("path must be absolute", r.json()["error"])
        r = request("POST", "/v1/sessions/%s/upload-file" % sid, b"abc",
                    headers={"X-ARL-Path": "/tmp/bad", "X-ARL-SHA256": hashlib.sha256(b"abd").hexdigest()})
        self.assertEqual(r.status, 500)
        self.assertIn("sha256 mismatch", r.json()["error"])
        out = execute(sid, [sh("ls", "ls -A /tmp")]).json()["results"][0]["output"]
        self.assertEqual(out["stdout"], "")                        # no file, no temp file left
        self.assertEqual(execute(sid, [sh("x", "true")]).json()["results"][0]["index"], 1)

    def test_download_errors(self):
        sid = self.session()
        r = request("POST", "/v1/sessions/%s/download-file" % sid, {"path": "/no/such"})
        self.assertEqual(r.status, 500)
        self.assertIn("No such file or directory", r.json()["error"])
        r = request("POST", "/v1/sessions/%s/download-file" % sid, {})
        self.assertEqual((r.status, r.json()), (400, {"error": "path is required"}))


class Faults(Base):
    def test_rate_limit(self):
        set_config(rps=0.001, burst=3.0)
        try:
            codes = [request("GET", "/healthz", key=None) for _ in range(4)]
        finally:
            set_config(rps=2048.0, burst=4096.0)
        self.assertEqual([r.status for r in codes[:3]], [200, 200, 200])
        self.assertEqual(codes[3].status, 429)
        self.assertEqual(codes[3].json(), {"error": "rate limit exceeded"})
        self.assertEqual(codes[3].header("Retry-After"), "1")

    def test_429_storm_then_normal(self):
        set_faults("429=1:max=3")
        codes = [request("GET", "/healthz", key=None).status for _ in range(4)]
        self.assertEqual(codes, [429, 429, 429, 200])

    def test_500_on_one_endpoint(self):
        sid = self.session()
        set_faults("500=1:endpoints=get:max=1")
        r = request("GET", "/v1/sessions/" + sid)
        self.assertEqual((r.status, r.json()), (500, {"error": "injected fault"}))
        self.assertEqual(execute(sid, [sh("a", "true")]).status, 200)
        self.assertEqual(request("GET", "/v1/sessions/" + sid).status, 200)

    def test_503_on_execute(self):
        sid = self.session()
        set_faults("503=1:endpoints=execute:max=1")
        r = execute(sid, [sh("a", "touch /tmp/ran")])
        self.assertEqual((r.status, r.json()), (503, {"error": "injected fault"}))
        self.assertEqual(execute(sid, [sh("b", "test -e /tmp/ran")]).json()["results"][0]["output"]["exit_code"], 1)

    def test_500_after_create_leaves_a_session(self):
        set_faults("500=1:endpoints=create:after=1:max=1")
        r = request("POST", "/v1/sessions", {"image": "after:1"})
        self.assertEqual(r.status, 500)
        live = control("sessions").json()
        self.assertEqual(len(live), 1)                  # creation is not idempotent
        self.sids += live

    def test_reset_before_and_mid_download(self):
        sid = self.session()
        set_faults("reset=1:endpoints=healthz:max=1")
        with self.assertRaises((ConnectionError, OSError)):
            request("GET", "/healthz", key=None)
        self.assertEqual(request("GET", "/healthz", key=None).status, 200)
        execute(sid, [sh("a", "head -c 200000 /dev/zero > /tmp/big")])
        set_faults("reset=1:endpoints=download:after=1:max=1")
        try:
            r = request("POST", "/v1/sessions/%s/download-file" % sid, {"path": "/tmp/big"})
            self.assertFalse(r.complete)
            self.assertEqual(r.trailers, {})
        except (ConnectionError, OSError):
            pass
        r = request("POST", "/v1/sessions/%s/download-file" % sid, {"path": "/tmp/big"})
        self.assertTrue(r.complete)
        self.assertEqual(r.trailers["x-arl-size-bytes"], "200000")

    def test_restart_forgets_operations_and_sessions(self):
        sid = self.session()
        kept = create()
        self.sids.append(kept)
        execute(sid, [sh("a", "true")], operationID="op-r")
        poll(sid, "op-r")
        r = control("restart", {"keepSessions": True})
        self.assertEqual(r.status, 200)
        self.assertEqual(request("GET", "/v1/sessions/%s/operations/op-r" % sid).status, 404)
        self.assertEqual(request("GET", "/v1/sessions/" + sid).status, 200)
        control("restart", {})
        self.assertEqual(request("GET", "/v1/sessions/" + sid).status, 404)
        self.assertEqual(control("sessions").json(), [])

    def test_delete_answered_404_after_deleting(self):
        sid = create()
        set_faults("404=1:endpoints=delete:after=1:max=1")
        r = request("DELETE", "/v1/sessions/" + sid)
        self.assertEqual((r.status, r.json()), (404, {"error": "session %s not found" % sid}))
        self.assertEqual(control("sessions").json(), [])

    def test_restart_resets_the_next_requests(self):
        sid = self.session()
        control("restart", {"keepSessions": True, "resetNext": 2})
        for _ in range(2):
            with self.assertRaises((ConnectionError, OSError)):
                request("GET", "/v1/sessions/" + sid)
        self.assertEqual(request("GET", "/v1/sessions/" + sid).status, 200)

    def test_request_log(self):
        sid = self.session()
        control("requests", method="DELETE")
        execute(sid, [sh("a", "true")], operationID="op-log")
        poll(sid, "op-log")
        # An entry is logged once its answer has ended, which can be after the client read it
        # and sent the next request: the create's may stand in the log, and the execute's may
        # come after a poll's. So what is there, not in which order.
        log = [e for e in control("requests").json() if e["endpoint"] != "create"]
        endpoints = [e["endpoint"] for e in log]
        self.assertEqual((endpoints.count("execute"), set(endpoints)), (1, {"execute", "operation"}))
        ex = next(e for e in log if e["endpoint"] == "execute")
        self.assertEqual((ex["session"], ex["operation"]), (sid, "op-log"))
        self.assertTrue(all(e["operation"] == "op-log" for e in log))

    def test_restart_then_the_same_operation_id_again(self):
        # The operation a restart forgot must not, when its step ends, remove the one sent
        # again under its ID: the forgotten one ends first (gate1), the new one after (gate2).
        sid = self.session()
        wait = "while [ ! -e /tmp/%s ]; do sleep 0.05; done; echo through"
        old, new = [sh("gated", wait % "gate1")], [sh("gated", wait % "gate2")]
        self.assertEqual(execute(sid, old, operationID="op-again").status, 202)
        r = control("restart", {"keepSessions": True, "whenStepRunning": "gated"})
        self.assertEqual(r.status, 200)
        self.assertEqual(execute(sid, new, operationID="op-again").status, 202)

        def gate(name):
            r = request("POST", "/v1/sessions/%s/upload-file" % sid, b"", headers={"X-ARL-Path": "/tmp/" + name})
            self.assertEqual(r.status, 200)
        gate("gate1")
        for _ in range(1200):
            if not processes_with("/tmp/gate1"):
                break
            time.sleep(0.05)
        self.assertEqual(processes_with("/tmp/gate1"), [])
        gate("gate2")
        r = poll(sid, "op-again")
        self.assertEqual((r.status, r.json()["status"]), (200, "done"))
        self.assertEqual(r.json()["result"]["results"][0]["output"]["stdout"], "through\n")

    def test_restart_while_a_step_runs(self):
        sid = self.session()
        steps = [sh("first", "true"), sh("long", "echo started; sleep 600")]
        self.assertEqual(execute(sid, steps, operationID="op-w").status, 202)
        r = control("restart", {"keepSessions": True, "whenStepRunning": "long"})
        self.assertEqual(r.status, 200)
        self.assertEqual(request("GET", "/v1/sessions/%s/operations/op-w" % sid).status, 404)
        r = control("restart", {"whenStepRunning": "nothing-of-that-name", "waitSeconds": 0.05})
        self.assertEqual(r.status, 409)
        self.assertEqual(request("GET", "/v1/sessions/" + sid).status, 200)     # nothing restarted

    def test_bad_fault_spec_is_refused(self):
        r = control("faults", {"spec": "nonsense=1"})
        self.assertEqual(r.status, 400)


def pod_processes(pid):
    """Processes (bwrap, agents, steps) under the server's temp dir or its children."""
    out = subprocess.run(["ps", "-eo", "pid,ppid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "fake-arl.%d." % pid in line]


def main():
    global SRV
    SRV = start_server()
    proc = SRV[0]
    ok = False
    try:
        prog = unittest.main(exit=False, verbosity=2 if "-v" in sys.argv else 1)
        ok = prog.result.wasSuccessful()
        left = control("sessions").json()
        if left:
            print("FAIL: sessions left on the gateway: %s" % left)
            ok = False
    finally:
        proc.terminate()
        proc.wait(timeout=120)
    tmpdirs = [d for d in os.listdir("/tmp") if d.startswith("fake-arl.%d." % proc.pid)]
    if tmpdirs or pod_processes(proc.pid):
        print("FAIL: left behind after SIGTERM: %s %s" % (tmpdirs, pod_processes(proc.pid)))
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
