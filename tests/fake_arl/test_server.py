#!/usr/bin/python3
"""Tests of the fake ARL API server (stdlib unittest).

Run: python3 tests/fake_arl/test_server.py   (prints "N passed, N failed, N skipped")
 or: cd tests/fake_arl && python3 -m unittest -v test_server
Each TestCase class starts its own server process; KUBECTL=/path/to/kubectl picks the
kubectl for the kubectl test (default: kubectl on PATH; skipped without one).
"""

import base64
import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
SERVER = os.path.join(HERE, "server.py")
PY = sys.executable or "/usr/bin/python3"
SAMPLES = os.path.join(HERE, "crds", "samples")
if os.environ.get("ARL_CRD_DIR"):
    SAMPLES = os.path.join(os.environ["ARL_CRD_DIR"], "samples")
GV = "/apis/arl.infra.io/v1alpha1"
NS = GV + "/namespaces/default"

import faults   # noqa: E402
import gotime   # noqa: E402
import schema   # noqa: E402
import store    # noqa: E402


def wait_for(fn, timeout=10.0, interval=0.05, what="condition"):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


class FakeServer:
    """A server process for one test class."""

    def __init__(self, *args):
        self.tmp = tempfile.mkdtemp(prefix="fake-arl-test.")
        self.kubeconfig = os.path.join(self.tmp, "kubeconfig")
        self.stderr = open(os.path.join(self.tmp, "stderr"), "w+")
        self.proc = subprocess.Popen([PY, SERVER, "--listen", "127.0.0.1:0", "--kubeconfig", self.kubeconfig]
                                     + list(args), stdout=subprocess.PIPE, stderr=self.stderr, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().strip() if ready else ""
        if not line.startswith("http"):
            self.proc.kill()
            self.stderr.seek(0)
            raise RuntimeError("server did not start: %r\n%s" % (line, self.stderr.read()))
        self.url = line
        self.port = int(line.rsplit(":", 1)[1])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.stderr.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def client(self, **kw):
        """A client with the kubeconfig's CA and token unless told otherwise."""
        text = open(self.kubeconfig).read()
        if "ssl_context" not in kw and self.url.startswith("https"):
            kw["ssl_context"] = ssl.create_default_context(cadata=kubeconfig_ca(self.kubeconfig))
        m = re.search(r'token: "([^"]+)"', text)
        if "token" not in kw and m:
            kw["token"] = m.group(1)
        return Client(self.url, **kw)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.raw = body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]


class Client:
    def __init__(self, url, token=None, ssl_context=None):
        self.url = url
        self.token = token
        self.ssl_context = ssl_context
        host = url.split("://", 1)[1]
        self.host, self.port = host.rsplit(":", 1)[0], int(host.rsplit(":", 1)[1])

    def conn(self, timeout=30):
        if self.url.startswith("https"):
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=self.ssl_context)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def req(self, method, path, body=None, ctype="application/json", headers=None):
        c = self.conn()
        h = dict(headers or {})
        if self.token:
            h["Authorization"] = "Bearer " + self.token
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            h["Content-Type"] = ctype
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        out = Response(r.status, r.getheaders(), r.read())
        c.close()
        return out

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.req("POST", path, body, **kw)

    def put(self, path, body, **kw):
        return self.req("PUT", path, body, **kw)

    def patch(self, path, body, ctype="application/merge-patch+json", **kw):
        return self.req("PATCH", path, body, ctype=ctype, **kw)

    def delete(self, path, body=None, **kw):
        return self.req("DELETE", path, body, **kw)

    def watch(self, path, timeout=30):
        """Opens a watch; returns (connection, response) for read_events."""
        c = self.conn(timeout)
        h = {"Authorization": "Bearer " + self.token} if self.token else {}
        c.request("GET", path, headers=h)
        return c, c.getresponse()


def read_events(resp, until=None, max_time=10.0):
    """Reads watch events until until(events) is true, the stream ends, or max_time."""
    events = []
    end = time.time() + max_time
    while time.time() < end:
        line = resp.readline()
        if not line:
            break
        events.append(json.loads(line))
        if until and until(events):
            break
    return events


def sandbox(name, pool="pool-a", **spec):
    s = {"poolRef": pool}
    s.update(spec)
    return {"apiVersion": "arl.infra.io/v1alpha1", "kind": "Sandbox", "metadata": {"name": name}, "spec": s}


def task(name, sb, steps, **spec):
    s = {"sandboxRef": sb, "steps": steps}
    s.update(spec)
    return {"apiVersion": "arl.infra.io/v1alpha1", "kind": "Task", "metadata": {"name": name}, "spec": s}


def warmpool(name, replicas=1, containers=None):
    return {"apiVersion": "arl.infra.io/v1alpha1", "kind": "WarmPool", "metadata": {"name": name},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": containers or [
                {"name": "executor", "image": "python:3.9-slim"}]}}}}


def cmd(name, *argv, **kw):
    d = {"name": name, "type": "Command", "command": list(argv)}
    d.update(kw)
    return d


class ServerTest(unittest.TestCase):
    ARGS = ()

    @classmethod
    def setUpClass(cls):
        cls.srv = FakeServer(*cls.ARGS)
        cls.c = cls.srv.client()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def assertStatus(self, r, code, reason=None):
        self.assertEqual(r.status, code, r.raw[:500])
        if code >= 400:
            self.assertEqual(r.json["kind"], "Status")
            self.assertEqual(r.json["apiVersion"], "v1")
            self.assertEqual(r.json["status"], "Failure")
            self.assertEqual(r.json["code"], code)
            if reason:
                self.assertEqual(r.json["reason"], reason)

    def wait_obj(self, path, pred, timeout=10, what=None):
        def f():
            r = self.c.get(path)
            return r.json if r.status == 200 and pred(r.json) else None
        return wait_for(f, timeout, what=what or path)

    def wait_gone(self, path, timeout=10):
        wait_for(lambda: self.c.get(path).status == 404, timeout, what="%s to be deleted" % path)

    def ready_sandbox(self, name, pool="pool-a", **spec):
        self.assertStatus(self.c.post(NS + "/sandboxes", sandbox(name, pool, **spec)), 201)
        return self.wait_obj(NS + "/sandboxes/" + name, lambda o: (o.get("status") or {}).get("phase") == "Ready",
                             what="sandbox %s Ready" % name)

    def run_task(self, name, sb, steps, wait=20, **spec):
        self.assertStatus(self.c.post(NS + "/tasks", task(name, sb, steps, **spec)), 201)
        return self.wait_obj(NS + "/tasks/" + name,
                             lambda o: (o.get("status") or {}).get("state") in ("Succeeded", "Failed"),
                             timeout=wait, what="task %s to finish" % name)

    def requests(self, since=0):
        r = self.c.get("/_fake/requests?since=%d" % since)
        return [json.loads(l) for l in r.raw.decode().splitlines() if l]

    def set_faults(self, spec):
        r = self.c.post("/_fake/faults", spec.encode(), ctype="text/plain")
        self.assertEqual(r.status, 200, r.raw)


# ---------------------------------------------------------------------------------------
# pure functions

class GoTimeTest(unittest.TestCase):
    def test_duration_string(self):
        cases = {0: "0s", 1: "1ns", 1500: "1.5\u00b5s", 900 * 10**6: "900ms", 1234567891: "1.234567891s",
                 123500 * 10**6: "2m3.5s", 3600 * 10**9: "1h0m0s", 3723 * 10**9: "1h2m3s", -1500 * 10**6: "-1.5s",
                 10**9: "1s", 61 * 10**9: "1m1s"}
        for ns, s in cases.items():
            self.assertEqual(gotime.duration_string(ns), s, ns)

    def test_parse_duration(self):
        self.assertEqual(gotime.parse_duration("30s"), 30 * 10**9)
        self.assertEqual(gotime.parse_duration("1h30m"), 5400 * 10**9)
        self.assertEqual(gotime.parse_duration("500ms"), 5 * 10**8)
        self.assertEqual(gotime.parse_duration("1.5s"), 15 * 10**8)
        self.assertEqual(gotime.parse_duration("0"), 0)
        self.assertEqual(gotime.parse_duration("-2s"), -2 * 10**9)
        for bad in ("30", "", "s", "1x", "1.5", "--1s"):
            with self.assertRaises(ValueError, msg=bad):
                gotime.parse_duration(bad)


class SelectorTest(unittest.TestCase):
    def obj(self, labels, name="n", ns="default"):
        return {"metadata": {"name": name, "namespace": ns, "labels": labels}}

    def test_label_operators(self):
        o = self.obj({"a": "1", "b": "x"})
        for sel, want in [("a=1", True), ("a==1", True), ("a=2", False), ("a!=2", True), ("c!=2", True),
                          ("a in (1,2)", True), ("a in (2, 3)", False), ("a notin (2)", True),
                          ("b notin (x)", False), ("a", True), ("c", False), ("!c", True), ("!a", False),
                          ("a=1,b=x", True), ("a=1,b=y", False), ("a in (1,2),!c", True)]:
            self.assertEqual(store.Selector(sel).matches(o), want, sel)

    def test_field_selector(self):
        o = self.obj({}, name="x", ns="ns1")
        self.assertTrue(store.Selector(field="metadata.name=x").matches(o))
        self.assertFalse(store.Selector(field="metadata.name!=x").matches(o))
        self.assertTrue(store.Selector(field="metadata.namespace==ns1,metadata.name=x").matches(o))
        with self.assertRaises(store.ApiError) as e:
            store.Selector(field="spec.poolRef=x")
        self.assertEqual(e.exception.code, 400)
        with self.assertRaises(store.ApiError):
            store.Selector("a in (")

    def test_patches(self):
        doc = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
        self.assertEqual(store.merge_patch(doc, {"a": {"b": None, "e": 2}, "d": 3}),
                         {"a": {"c": [1, 2], "e": 2}, "d": 3})
        self.assertEqual(store.json_patch(doc, [{"op": "add", "path": "/a/c/-", "value": 3},
                                                {"op": "replace", "path": "/d", "value": 5},
                                                {"op": "remove", "path": "/a/b"}]),
                         {"a": {"c": [1, 2, 3]}, "d": 5})
        with self.assertRaises(ValueError):
            store.json_patch(doc, [{"op": "test", "path": "/d", "value": 2}])


class SchemaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.crds = schema.load_crds(os.path.dirname(SAMPLES))

    def test_loaded(self):
        self.assertEqual(sorted(self.crds), ["sandboxes", "tasks", "warmpools"])
        t = self.crds["tasks"]
        self.assertEqual((t.kind, t.list_kind, t.api_version, t.has_status), ("Task", "TaskList",
                                                                              "arl.infra.io/v1alpha1", True))
        self.assertEqual([c["name"] for c in self.crds["sandboxes"].printer_columns], ["Phase", "Pod"])

    def test_prune_default_validate(self):
        crd = self.crds["sandboxes"]
        obj = {"metadata": {"name": "x"}, "spec": {"poolRef": "p", "x": 1, "resources": {"limits": {"cpu": "1x"}}},
               "junk": 1}
        unknown = []
        crd.prune_and_default(obj, unknown)
        self.assertEqual(sorted(unknown), ["junk", "spec.x"])
        errs = [str(e) for e in crd.validate(obj)]
        self.assertEqual(len(errs), 1)
        self.assertIn("spec.resources.limits.cpu", errs[0])
        obj["spec"]["resources"]["limits"]["cpu"] = 2
        self.assertEqual(crd.validate(obj), [])


# ---------------------------------------------------------------------------------------

class DiscoveryTest(ServerTest):
    def test_version_and_groups(self):
        r = self.c.get("/version")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["major"], "1")
        self.assertIn("v1", self.c.get("/api").json["versions"])
        groups = {g["name"]: g for g in self.c.get("/apis").json["groups"]}
        self.assertEqual(groups["arl.infra.io"]["preferredVersion"]["groupVersion"], "arl.infra.io/v1alpha1")
        g = self.c.get("/apis/arl.infra.io").json
        self.assertEqual((g["kind"], g["name"]), ("APIGroup", "arl.infra.io"))

    def test_resource_list(self):
        r = self.c.get(GV).json
        self.assertEqual(r["kind"], "APIResourceList")
        self.assertEqual(r["groupVersion"], "arl.infra.io/v1alpha1")
        res = {x["name"]: x for x in r["resources"]}
        for plural, kind in (("warmpools", "WarmPool"), ("sandboxes", "Sandbox"), ("tasks", "Task")):
            self.assertEqual(res[plural]["kind"], kind)
            self.assertTrue(res[plural]["namespaced"])
            self.assertEqual(set(res[plural]["verbs"]), {"create", "delete", "deletecollection", "get",
                                                          "list", "patch", "update", "watch"})
            self.assertEqual(set(res[plural + "/status"]["verbs"]), {"get", "patch", "update"})
            self.assertNotIn("shortNames", res[plural])   # the CRDs define none

    def test_openapi_and_unknown(self):
        r = self.c.get("/openapi/v2", headers={"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
        self.assertEqual((r.status, r.raw), (200, b""))
        self.assertEqual(self.c.get("/openapi/v3").status, 404)
        self.assertStatus(self.c.get("/apis/other.io/v1/things"), 404, "NotFound")
        self.assertStatus(self.c.get(NS + "/widgets"), 404, "NotFound")
        self.assertEqual(self.c.get("/healthz").raw, b"ok")

    def test_help_documents_every_option(self):
        out = subprocess.run([PY, SERVER, "--help"], stdout=subprocess.PIPE, text=True, check=True).stdout
        src = open(SERVER).read()
        for opt in set(re.findall(r'add_argument\("(--[a-z-]+)"', src)):
            self.assertIn(opt, out)
        for endpoint in ("/_fake/state", "/_fake/requests", "/_fake/faults", "/_fake/down", "/_fake/tokens"):
            self.assertIn(endpoint, out)
        for fault in ("500=P", "429=P", "reset=P", "latency=D", "watch-cut=D", "watch-410=P", "sandbox-fail=P",
                      "no-idle=POOL", "slow-operator=N"):
            self.assertIn(fault, out)

    def test_kubeconfig(self):
        text = open(self.srv.kubeconfig).read()
        self.assertIn('server: "%s"' % self.srv.url, text)
        self.assertIn('namespace: "default"', text)
        self.assertIn("current-context: fake-arl", text)


class CrudTest(ServerTest):
    def test_create_get_conflict(self):
        r = self.c.post(NS + "/warmpools", warmpool("crud-a"))
        self.assertStatus(r, 201)
        md = r.json["metadata"]
        self.assertEqual(md["namespace"], "default")
        self.assertEqual(md["generation"], 1)
        self.assertTrue(md["uid"] and md["creationTimestamp"].endswith("Z"))
        self.assertRegex(md["resourceVersion"], r"^\d+$")
        g = self.c.get(NS + "/warmpools/crud-a")
        self.assertEqual(g.json["metadata"]["uid"], md["uid"])
        r = self.c.post(NS + "/warmpools", warmpool("crud-a"))
        self.assertStatus(r, 409, "AlreadyExists")
        self.assertEqual(r.json["message"], 'warmpools.arl.infra.io "crud-a" already exists')
        r = self.c.get(NS + "/warmpools/nope")
        self.assertStatus(r, 404, "NotFound")
        self.assertEqual(r.json["message"], 'warmpools.arl.infra.io "nope" not found')
        self.assertEqual(r.json["details"], {"name": "nope", "group": "arl.infra.io", "kind": "warmpools"})

    def test_update_conflict_generation_status(self):
        self.assertStatus(self.c.post(NS + "/warmpools", warmpool("crud-b", replicas=0)), 201)
        obj = self.wait_obj(NS + "/warmpools/crud-b", lambda o: "status" in o)   # the operator wrote it
        rv1 = obj["metadata"]["resourceVersion"]
        obj["metadata"]["labels"] = {"x": "1"}
        obj["status"] = {"readyReplicas": 99, "allocatedReplicas": 0}
        r = self.c.put(NS + "/warmpools/crud-b", obj)
        self.assertStatus(r, 200)
        self.assertEqual(r.json["metadata"]["generation"], 1)             # metadata change only
        self.assertEqual(r.json["status"]["readyReplicas"], 0)           # status ignored
        self.assertGreater(int(r.json["metadata"]["resourceVersion"]), int(rv1))
        obj["metadata"]["resourceVersion"] = rv1                          # stale
        r = self.c.put(NS + "/warmpools/crud-b", obj)
        self.assertStatus(r, 409, "Conflict")
        self.assertIn("the object has been modified", r.json["message"])
        cur = self.c.get(NS + "/warmpools/crud-b").json
        cur["spec"]["replicas"] = 2
        r = self.c.put(NS + "/warmpools/crud-b", cur)
        self.assertEqual(r.json["metadata"]["generation"], 2)
        del cur["metadata"]["resourceVersion"]                            # unconditional update
        cur["spec"]["replicas"] = 0
        self.assertStatus(self.c.put(NS + "/warmpools/crud-b", cur), 200)
        self.assertStatus(self.c.put(NS + "/warmpools/missing", dict(cur, metadata={"name": "missing"})), 404)
        cur["metadata"]["name"] = "other"
        self.assertStatus(self.c.put(NS + "/warmpools/crud-b", cur), 400, "BadRequest")

    def test_status_subresource(self):
        self.c.post(NS + "/sandboxes", sandbox("st-a", pool="no-such-pool"))
        cur = self.c.get(NS + "/sandboxes/st-a").json
        cur["spec"]["poolRef"] = "changed"
        cur["status"] = {"phase": "Ready", "podName": "x"}
        del cur["metadata"]["resourceVersion"]
        r = self.c.put(NS + "/sandboxes/st-a/status", cur)
        self.assertStatus(r, 200)
        self.assertEqual(r.json["spec"]["poolRef"], "no-such-pool")       # spec untouched via /status
        self.assertEqual(r.json["status"]["podName"], "x")
        r = self.c.patch(NS + "/sandboxes/st-a/status", {"status": {"podIP": "1.2.3.4"}})
        self.assertEqual(r.json["status"]["podIP"], "1.2.3.4")
        r = self.c.patch(NS + "/sandboxes/st-a/status", {"status": {"conditions": [{"type": "X"}]}})
        self.assertStatus(r, 422, "Invalid")
        self.assertEqual(self.c.get(NS + "/sandboxes/st-a/status").json["status"]["podIP"], "1.2.3.4")

    def test_patches(self):
        self.c.post(NS + "/sandboxes", sandbox("pa-a", pool="np"))
        r = self.c.patch(NS + "/sandboxes/pa-a", {"metadata": {"labels": {"a": "b"}}, "spec": {"keepAlive": True}})
        self.assertStatus(r, 200)
        self.assertEqual(r.json["metadata"]["labels"], {"a": "b"})
        self.assertTrue(r.json["spec"]["keepAlive"])
        r = self.c.patch(NS + "/sandboxes/pa-a", [{"op": "replace", "path": "/spec/poolRef", "value": "np2"}],
                         ctype="application/json-patch+json")
        self.assertEqual(r.json["spec"]["poolRef"], "np2")
        r = self.c.patch(NS + "/sandboxes/pa-a", {"spec": {"keepAlive": False}},
                         ctype="application/strategic-merge-patch+json")
        self.assertStatus(r, 415, "UnsupportedMediaType")
        r = self.c.patch(NS + "/sandboxes/pa-a", {"metadata": {"resourceVersion": "1"}, "spec": {"keepAlive": False}})
        self.assertStatus(r, 409, "Conflict")
        self.assertStatus(self.c.patch(NS + "/sandboxes/nope", {"spec": {}}), 404)
        r = self.c.patch(NS + "/sandboxes/pa-a", {"spec": {"idleTimeoutSeconds": -5}})
        self.assertStatus(r, 422, "Invalid")
        app = sandbox("pa-b", pool="np")
        self.assertStatus(self.c.patch(NS + "/sandboxes/pa-b", app, ctype="application/apply-patch+yaml"), 422)
        r = self.c.patch(NS + "/sandboxes/pa-b?fieldManager=t", app, ctype="application/apply-patch+yaml")
        self.assertStatus(r, 201)

    def test_namespace_and_names(self):
        body = sandbox("ns-a", pool="np")
        body["metadata"]["namespace"] = "other"
        r = self.c.post(NS + "/sandboxes", body)
        self.assertStatus(r, 400, "BadRequest")
        self.assertIn("does not match the namespace", r.json["message"])
        r = self.c.post(GV + "/namespaces/team-b/sandboxes", sandbox("ns-a", pool="np"))
        self.assertStatus(r, 201)
        self.assertEqual(r.json["metadata"]["namespace"], "team-b")
        names = [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in self.c.get(GV + "/sandboxes").json["items"]]
        self.assertIn(("team-b", "ns-a"), names)
        self.assertNotIn(("team-b", "ns-a"), [(o["metadata"]["namespace"], o["metadata"]["name"])
                                              for o in self.c.get(NS + "/sandboxes").json["items"]])
        self.assertStatus(self.c.post(GV + "/sandboxes", sandbox("x", pool="np")), 405, "MethodNotAllowed")
        gen = {"apiVersion": "arl.infra.io/v1alpha1", "kind": "Sandbox", "metadata": {"generateName": "gen-"},
               "spec": {"poolRef": "np"}}
        r = self.c.post(NS + "/sandboxes", gen)
        self.assertStatus(r, 201)
        self.assertRegex(r.json["metadata"]["name"], r"^gen-[a-z0-9]{5}$")
        r = self.c.post(NS + "/sandboxes", {"apiVersion": "arl.infra.io/v1alpha1", "kind": "Sandbox",
                                            "metadata": {}, "spec": {"poolRef": "np"}})
        self.assertStatus(r, 422, "Invalid")
        r = self.c.post(NS + "/sandboxes", dict(sandbox("k", pool="np"), kind="Task"))
        self.assertStatus(r, 400)

    def test_delete_and_finalizers(self):
        self.c.post(NS + "/warmpools", warmpool("del-a"))
        r = self.c.delete(NS + "/warmpools/del-a")
        self.assertStatus(r, 200)
        self.assertEqual(r.json["metadata"]["name"], "del-a")
        self.assertStatus(self.c.get(NS + "/warmpools/del-a"), 404)
        self.assertStatus(self.c.delete(NS + "/warmpools/del-a"), 404, "NotFound")
        body = warmpool("del-b")
        body["metadata"]["finalizers"] = ["example.com/hold"]
        self.c.post(NS + "/warmpools", body)
        r = self.c.delete(NS + "/warmpools/del-b")
        self.assertStatus(r, 200)
        self.assertTrue(r.json["metadata"]["deletionTimestamp"])
        cur = self.c.get(NS + "/warmpools/del-b").json
        self.assertTrue(cur["metadata"]["deletionTimestamp"])
        r = self.c.patch(NS + "/warmpools/del-b", {"metadata": {"finalizers": ["example.com/hold", "x.io/new"]}})
        self.assertStatus(r, 422, "Invalid")
        self.assertStatus(self.c.patch(NS + "/warmpools/del-b", {"metadata": {"finalizers": None}}), 200)
        self.assertStatus(self.c.get(NS + "/warmpools/del-b"), 404)
        self.c.post(NS + "/warmpools", warmpool("del-c"))
        r = self.c.delete(NS + "/warmpools/del-c", {"preconditions": {"uid": "wrong"}})
        self.assertStatus(r, 409, "Conflict")
        r = self.c.delete(NS + "/warmpools/del-c?dryRun=All")
        self.assertStatus(r, 200)
        self.assertStatus(self.c.get(NS + "/warmpools/del-c"), 200)

    def test_list_limit_continue_and_deletecollection(self):
        for i in range(5):
            b = sandbox("lst-%d" % i, pool="np")
            b["metadata"]["labels"] = {"grp": "lst", "i": str(i)}
            self.c.post(NS + "/sandboxes", b)
        r = self.c.get(NS + "/sandboxes?labelSelector=grp%3Dlst&limit=2")
        self.assertEqual(r.json["kind"], "SandboxList")
        self.assertEqual([o["metadata"]["name"] for o in r.json["items"]], ["lst-0", "lst-1"])
        self.assertEqual(r.json["metadata"]["remainingItemCount"], 3)
        names = [o["metadata"]["name"] for o in r.json["items"]]
        while r.json["metadata"].get("continue"):
            r = self.c.get(NS + "/sandboxes?labelSelector=grp%3Dlst&limit=2&continue=" + r.json["metadata"]["continue"])
            names += [o["metadata"]["name"] for o in r.json["items"]]
        self.assertEqual(names, ["lst-%d" % i for i in range(5)])
        r = self.c.get(NS + "/sandboxes?labelSelector=grp%3Dlst,i%20in%20(1,3)")
        self.assertEqual([o["metadata"]["name"] for o in r.json["items"]], ["lst-1", "lst-3"])
        r = self.c.get(NS + "/sandboxes?fieldSelector=metadata.name%3Dlst-4")
        self.assertEqual([o["metadata"]["name"] for o in r.json["items"]], ["lst-4"])
        self.assertStatus(self.c.get(NS + "/sandboxes?fieldSelector=spec.poolRef%3Dnp"), 400, "BadRequest")
        r = self.c.delete(NS + "/sandboxes?labelSelector=grp%3Dlst,i!%3D0")
        self.assertStatus(r, 200)
        self.assertEqual(len(r.json["items"]), 4)

    def test_table_output(self):
        self.c.post(NS + "/tasks", task("tbl-a", "no-sb", []))
        r = self.c.get(NS + "/tasks", headers={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
        self.assertEqual(r.json["kind"], "Table")
        self.assertEqual([c["name"] for c in r.json["columnDefinitions"]], ["Name", "State", "ExitCode", "Age"])


class ValidationTest(ServerTest):
    def test_required_types_bounds(self):
        b = sandbox("v-a")
        del b["spec"]["poolRef"]
        r = self.c.post(NS + "/sandboxes", b)
        self.assertStatus(r, 422, "Invalid")
        self.assertEqual(r.json["message"], 'Sandbox.arl.infra.io "v-a" is invalid: spec.poolRef: Required value')
        self.assertEqual(r.json["details"]["causes"][0]["field"], "spec.poolRef")
        r = self.c.post(NS + "/sandboxes", sandbox("v-b", idleTimeoutSeconds="10"))
        self.assertStatus(r, 422)
        self.assertIn("spec.idleTimeoutSeconds in body must be of type integer", r.json["message"])
        r = self.c.post(NS + "/sandboxes", sandbox("v-c", idleTimeoutSeconds=-1))
        self.assertIn("should be greater than or equal to 0", r.json["message"])
        r = self.c.post(NS + "/tasks", task("v-d", "sb", [], retries=11))
        self.assertIn("spec.retries in body should be less than or equal to 10", r.json["message"])
        r = self.c.post(NS + "/tasks", task("v-e", "sb", [{"name": "x"}], timeout=30))
        self.assertStatus(r, 422)
        self.assertIn("spec.steps[0].type: Required value", r.json["message"])
        self.assertIn("spec.timeout in body must be of type string", r.json["message"])
        self.assertTrue(r.json["message"].startswith('Task.arl.infra.io "v-e" is invalid: ['))
        r = self.c.post(NS + "/sandboxes", sandbox("v-f", idleTimeoutSeconds=2**31))
        self.assertIn("must be of type int32", r.json["message"])

    def test_pruning_and_strict(self):
        b = sandbox("v-p", bogus=1)
        b["extra"] = True
        b["metadata"]["color"] = "red"
        r = self.c.post(NS + "/sandboxes", b)
        self.assertStatus(r, 201)
        self.assertNotIn("bogus", r.json["spec"])
        self.assertNotIn("extra", r.json)
        warnings = r.header_all("Warning")
        self.assertIn('299 - "unknown field \\"spec.bogus\\""', warnings)
        self.assertEqual(len(warnings), 3)
        r = self.c.post(NS + "/sandboxes?fieldValidation=Strict", sandbox("v-q", bogus=1))
        self.assertStatus(r, 400, "BadRequest")
        self.assertIn('unknown field "spec.bogus"', r.json["message"])
        self.assertStatus(self.c.get(NS + "/sandboxes/v-q"), 404)
        r = self.c.post(NS + "/sandboxes?fieldValidation=Ignore", sandbox("v-r", bogus=1))
        self.assertEqual(r.header_all("Warning"), [])
        r = self.c.post(NS + "/sandboxes", sandbox("v-s", status={"phase": "Ready"}))
        self.assertNotIn("status", r.json)                                 # status never via main resource

    def test_warmpool_rules(self):
        r = self.c.post(NS + "/warmpools", warmpool("bad.name"))
        self.assertStatus(r, 422, "Invalid")
        self.assertIn("WarmPool name must be a valid DNS label", r.json["message"])
        r = self.c.post(NS + "/warmpools", warmpool("Bad_Name"))
        self.assertIn("metadata.name: Invalid value", r.json["message"])
        r = self.c.post(NS + "/warmpools", warmpool("wp-1", containers=[{"image": "x"}]))
        self.assertIn("spec.template.spec.containers[0].name: Required value", r.json["message"])
        r = self.c.post(NS + "/warmpools", warmpool("wp-2", containers=[{"name": "a"}, {"name": "a"}]))
        self.assertIn("Duplicate value", r.json["message"])
        b = warmpool("wp-3", containers=[{"name": "a", "ports": [{"containerPort": 80}]}])
        b["spec"]["template"]["metadata"] = {"labels": {"x": "y"}}
        r = self.c.post(NS + "/warmpools", b)
        self.assertStatus(r, 201)
        self.assertEqual(r.json["spec"]["template"]["spec"]["containers"][0]["ports"][0]["protocol"], "TCP")  # default
        self.assertEqual(r.json["spec"]["template"]["metadata"], {})      # free object: pruned (as for real)
        b = warmpool("wp-4")
        del b["spec"]["template"]
        self.assertIn("spec.template: Required value", self.c.post(NS + "/warmpools", b).json["message"])
        b = sandbox("v-l")
        b["metadata"]["labels"] = {"owner": "host:123"}
        r = self.c.post(NS + "/sandboxes", b)
        self.assertStatus(r, 422)
        self.assertIn("metadata.labels: Invalid value", r.json["message"])

    def test_samples_are_valid(self):
        for f in ("warmpool.yaml", "warmpool-swebench.yaml", "sandbox.yaml", "task.yaml"):
            import yaml
            with open(os.path.join(SAMPLES, f)) as fh:
                doc = yaml.safe_load(fh)
            plural = {"WarmPool": "warmpools", "Sandbox": "sandboxes", "Task": "tasks"}[doc["kind"]]
            r = self.c.post(NS + "/%s?fieldValidation=Strict&dryRun=All" % plural, doc)
            self.assertStatus(r, 201)


class WatchTest(ServerTest):
    ARGS = ("--history", "30", "--bookmark-interval", "0.3")

    def test_events_and_selectors(self):
        rv = self.c.get(NS + "/sandboxes").json["metadata"]["resourceVersion"]
        conn, resp = self.c.watch(NS + "/sandboxes?watch=1&labelSelector=w%3D1&resourceVersion=" + rv)
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.getheader("Transfer-Encoding"), "chunked")
        b = sandbox("w-a", pool="np")
        b["metadata"]["labels"] = {"w": "1"}
        self.c.post(NS + "/sandboxes", b)
        self.c.post(NS + "/sandboxes", sandbox("w-other", pool="np"))             # filtered out
        self.c.patch(NS + "/sandboxes/w-a", {"spec": {"keepAlive": True}})
        self.c.patch(NS + "/sandboxes/w-a", {"metadata": {"labels": {"w": "2"}}})  # leaves the selection
        evs = read_events(resp, until=lambda e: any(x["type"] == "DELETED" for x in e))
        conn.close()
        types = [e["type"] for e in evs]
        self.assertEqual(types[0], "ADDED")
        self.assertIn("MODIFIED", types)
        self.assertEqual(types[-1], "DELETED")
        self.assertTrue(all(e["object"]["metadata"]["name"] == "w-a" for e in evs))
        rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in evs]
        self.assertEqual(rvs, sorted(rvs))
        # finalizer-driven deletion shows as MODIFIED (deletionTimestamp) then DELETED
        self.c.post(NS + "/sandboxes", sandbox("w-b", pool="np"))
        wait_for(lambda: self.c.get(NS + "/sandboxes/w-b").json["metadata"].get("finalizers"), what="finalizer")
        rv = self.c.get(NS + "/sandboxes/w-b").json["metadata"]["resourceVersion"]
        conn, resp = self.c.watch(NS + "/sandboxes?watch=true&fieldSelector=metadata.name%3Dw-b&resourceVersion=" + rv)
        self.c.delete(NS + "/sandboxes/w-b")
        evs = read_events(resp, until=lambda e: e[-1]["type"] == "DELETED")
        conn.close()
        self.assertEqual(evs[0]["type"], "MODIFIED")
        self.assertTrue(evs[0]["object"]["metadata"]["deletionTimestamp"])
        self.assertEqual(evs[-1]["type"], "DELETED")

    def test_initial_list_bookmarks_timeout(self):
        self.c.post(NS + "/tasks", task("w-t", "none", []))
        t0 = time.time()
        conn, resp = self.c.watch(NS + "/tasks?watch=1&allowWatchBookmarks=true&timeoutSeconds=2")
        evs = read_events(resp, max_time=10)
        conn.close()
        self.assertLess(time.time() - t0, 5)                                   # ended by timeoutSeconds
        self.assertEqual(evs[0]["type"], "ADDED")                              # no rv: current state first
        marks = [e for e in evs if e["type"] == "BOOKMARK"]
        self.assertGreaterEqual(len(marks), 3)
        self.assertEqual(marks[0]["object"]["kind"], "Task")
        self.assertRegex(marks[-1]["object"]["metadata"]["resourceVersion"], r"^\d+$")

    def test_expired(self):
        rv = self.c.get(NS + "/warmpools").json["metadata"]["resourceVersion"]
        for i in range(40):                                     # more events than --history 30
            self.c.post(NS + "/tasks", task("exp-%d" % i, "none", []))
        # the window is per resource, as in the API server's watch cache: a quiet kind's
        # resourceVersion is still good
        conn, resp = self.c.watch(NS + "/warmpools?watch=1&timeoutSeconds=1&resourceVersion=" + rv)
        self.assertEqual(read_events(resp, max_time=5), [])
        conn.close()
        conn, resp = self.c.watch(NS + "/tasks?watch=1&resourceVersion=" + rv)
        evs = read_events(resp, max_time=5)
        conn.close()
        self.assertEqual(len(evs), 1)
        self.assertEqual(evs[0]["type"], "ERROR")
        st = evs[0]["object"]
        self.assertEqual((st["kind"], st["code"], st["reason"]), ("Status", 410, "Expired"))
        self.assertIn("too old resource version", st["message"])


class OperatorTest(ServerTest):
    ARGS = ("--pool", "pool-a=2", "--pod-delay", "0.1", "--sandbox-delay", "0.02", "--retry-interval", "0.2",
            "--pending-interval", "0.2")

    def test_pool_status_and_pods(self):
        # The server is shared with the other operator tests: wait until their sandboxes are gone.
        wp = self.wait_obj(NS + "/warmpools/pool-a",
                           lambda o: (o.get("status") or {}).get("readyReplicas") == 2
                           and (o.get("status") or {}).get("allocatedReplicas") == 0)
        self.assertEqual(wp["status"]["allocatedReplicas"], 0)
        pods = self.c.get("/api/v1/namespaces/default/pods?labelSelector=arl.infra.io%2Fpool%3Dpool-a").json["items"]
        self.assertEqual(len(pods), 2)
        self.assertEqual(pods[0]["metadata"]["labels"]["arl.infra.io/status"], "idle")
        self.assertTrue(os.path.isdir(pods[0]["metadata"]["annotations"]["fake-arl.test/workspace"]))

    def test_sandbox_lifecycle_and_tasks(self):
        sb = self.ready_sandbox("op-a", keepAlive=True)
        self.assertEqual(sb["metadata"]["finalizers"], ["arl.infra.io/sandbox-finalizer"])
        st = sb["status"]
        self.assertEqual((st["podIP"], st["workDir"]), ("127.0.0.1", "/workspace"))
        pod = st["podName"]
        self.assertTrue(pod.startswith("pool-a-"))
        self.wait_obj(NS + "/warmpools/pool-a", lambda o: o["status"]["allocatedReplicas"] >= 1
                           and o["status"]["readyReplicas"] == 2)        # afa0e55: replicas idle kept warm

        t = self.run_task("op-t1", "op-a", [
            {"name": "w", "type": "FilePatch", "path": "/workspace/s.py", "content": "print('hi')\n"},
            cmd("r", "python3", "/workspace/s.py"),
            cmd("e", "sh", "-c", 'printf "%s" "$GREETING"', env={"GREETING": "hello"})],
            timeout="10s", traceID="abc")
        s = t["status"]
        self.assertEqual(s["state"], "Succeeded")
        self.assertNotIn("exitCode", s)
        self.assertEqual(s["stdout"], "File created: /workspace/s.py\nhi\nhello\n")
        self.assertRegex(s["duration"], r"^(\d+(\.\d+)?(ms|s)|\d+m[\d.]+s)$")
        self.assertRegex(s["startTime"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertRegex(s["completionTime"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        sb = self.c.get(NS + "/sandboxes/op-a").json
        self.assertTrue(sb["status"]["lastTaskTime"])

        t = self.run_task("op-t2", "op-a", [
            {"name": "mk", "type": "FilePatch", "path": "sub/dir/f.txt", "content": "x"},
            cmd("ls", "cat", "f.txt", workDir="/workspace/sub/dir"),
            cmd("fail", "sh", "-c", "echo out; echo err >&2; exit 42"),
            cmd("never", "echo", "not reached")])
        s = t["status"]
        self.assertEqual((s["state"], s["exitCode"]), ("Failed", 42))
        self.assertEqual(s["stdout"], "File created: sub/dir/f.txt\nx\nout\n")
        self.assertEqual(s["stderr"], "err\n")

        t0 = time.time()
        t = self.run_task("op-t3", "op-a", [cmd("slow", "sh", "-c", "echo sleeping; sleep 20; echo no")],
                          timeout="1s")
        self.assertLess(time.time() - t0, 10)
        self.assertEqual((t["status"]["state"], t["status"]["exitCode"]), ("Failed", -1))
        self.assertEqual(t["status"]["stdout"], "sleeping\n")

        t = self.run_task("op-t4", "op-a", [
            {"name": "tb", "type": "FilePatch", "path": "/testbed/fix.patch", "content": "p\n"},
            cmd("where", "cat", "/workspace/testbed/fix.patch"),
            {"name": "nopath", "type": "FilePatch", "content": "x"}])
        s = t["status"]
        self.assertEqual(s["stdout"], "File created: /testbed/fix.patch\np\n")
        self.assertEqual((s["exitCode"], s["stderr"]), (1, "FilePatch step requires 'path' field\n"))

        t = self.run_task("op-t5", "op-a", [cmd("missing", "no-such-binary-xyz")])
        self.assertEqual(t["status"]["exitCode"], 1)
        self.assertEqual(t["status"]["stderr"],
                         'failed to start command: exec: "no-such-binary-xyz": executable file not found in $PATH')

        t = self.run_task("op-t6", "op-a", [cmd("empty", "printf", "a\\nb"), {"name": "u", "type": "Unknown"}])
        self.assertEqual((t["status"]["state"], t["status"]["stdout"]), ("Succeeded", "a\nb\n"))
        t = self.run_task("op-t7", "op-a", [])
        self.assertEqual(t["status"]["state"], "Succeeded")

        # deleting the sandbox deletes its pod (clean workspace); the pool makes a fresh one
        root = [p for p in json.loads(self.c.get("/_fake/state").raw)["pods"] if p["name"] == pod][0]["root"]
        self.assertTrue(os.path.isdir(root))
        r = self.c.delete(NS + "/sandboxes/op-a")
        self.assertStatus(r, 200)
        self.wait_gone(NS + "/sandboxes/op-a")
        self.assertFalse(os.path.exists(root))
        self.assertStatus(self.c.get("/api/v1/namespaces/default/pods/" + pod), 404)
        sb2 = self.ready_sandbox("op-b", keepAlive=True)
        t = self.run_task("op-b1", "op-b", [cmd("ls", "ls", "-A", "/workspace")])
        self.assertNotIn("stdout", t["status"])                          # fresh workspace: empty ls
        self.assertNotEqual(sb2["status"]["podName"], pod)
        self.c.delete(NS + "/sandboxes/op-b")

    def test_task_waits_and_missing_sandbox(self):
        t = self.run_task("op-m1", "does-not-exist", [cmd("x", "true")])
        self.assertEqual(t["status"]["state"], "Failed")
        self.assertEqual(t["status"]["stderr"],
                         'sandbox does-not-exist not found: sandboxes.arl.infra.io "does-not-exist" not found')
        self.assertNotIn("completionTime", t["status"])
        self.assertNotIn("exitCode", t["status"])
        # a sandbox on a pool that does not exist stays Pending, and so do its Tasks
        self.c.post(NS + "/sandboxes", sandbox("op-p", pool="no-such-pool"))
        self.c.post(NS + "/tasks", task("op-p1", "op-p", [cmd("x", "true")]))
        self.wait_obj(NS + "/tasks/op-p1", lambda o: (o.get("status") or {}).get("state") == "Pending")
        time.sleep(1)
        self.assertEqual(self.c.get(NS + "/sandboxes/op-p").json["status"]["phase"], "Pending")
        self.assertEqual(self.c.get(NS + "/tasks/op-p1").json["status"],
                         {"state": "Pending", "duration": "0s"})
        # ... until the pool appears
        self.c.post(NS + "/warmpools", warmpool("no-such-pool"))
        t = self.wait_obj(NS + "/tasks/op-p1", lambda o: o["status"]["state"] == "Succeeded")
        self.c.delete(NS + "/sandboxes/op-p")
        self.c.delete(NS + "/warmpools/no-such-pool")
        # a timeout that is not a Go duration: the operator cannot decode the Task at all
        self.c.post(NS + "/tasks", task("op-bad", "op-p", [cmd("x", "true")], timeout="30"))
        time.sleep(0.8)
        self.assertNotIn("status", self.c.get(NS + "/tasks/op-bad").json)

    def test_sandbox_deleted_under_a_running_task(self):
        self.ready_sandbox("op-del", keepAlive=True)
        self.c.post(NS + "/tasks", task("op-del1", "op-del", [cmd("s", "sh", "-c", "echo started; sleep 30")]))
        self.wait_obj(NS + "/tasks/op-del1", lambda o: (o.get("status") or {}).get("state") == "Running")
        time.sleep(0.3)
        self.c.delete(NS + "/sandboxes/op-del")
        t = self.wait_obj(NS + "/tasks/op-del1", lambda o: o["status"]["state"] == "Failed", timeout=10)
        self.assertEqual(t["status"]["exitCode"], 1)
        self.assertIn("Unavailable", t["status"]["stderr"])
        self.assertNotIn("stdout", t["status"])
        self.wait_gone(NS + "/sandboxes/op-del")

    def test_long_sandbox_name_stays_pending(self):
        name = "s" * 64
        self.assertStatus(self.c.post(NS + "/sandboxes", sandbox(name)), 201)
        self.wait_obj(NS + "/sandboxes/" + name, lambda o: (o.get("status") or {}).get("phase") == "Pending")
        time.sleep(1)
        self.assertEqual(self.c.get(NS + "/sandboxes/" + name).json["status"]["phase"], "Pending")
        self.c.delete(NS + "/sandboxes/" + name)
        self.wait_gone(NS + "/sandboxes/" + name)

    def test_cleanup_rules(self):
        # keepAlive false: ReadyForCleanup after the (only) task, then deleted
        self.ready_sandbox("op-k")
        self.run_task("op-k1", "op-k", [cmd("x", "true")])
        self.wait_gone(NS + "/sandboxes/op-k")
        # ttlSecondsAfterFinished
        self.ready_sandbox("op-ttl", keepAlive=True)
        # 3 s, not 1: on a loaded machine the poll below could miss a 1 s window between
        # "finished" and "deleted".
        self.run_task("op-ttl1", "op-ttl", [cmd("x", "true")], ttlSecondsAfterFinished=3)
        self.wait_gone(NS + "/tasks/op-ttl1", timeout=10)
        # idleTimeoutSeconds counts from lastTaskTime (never set before a first Task)
        self.ready_sandbox("op-idle", keepAlive=True, idleTimeoutSeconds=1)
        time.sleep(1.5)
        self.assertStatus(self.c.get(NS + "/sandboxes/op-idle"), 200)
        self.run_task("op-idle1", "op-idle", [cmd("x", "true")])
        self.wait_gone(NS + "/sandboxes/op-idle", timeout=6)
        self.c.delete(NS + "/sandboxes/op-ttl")

    def test_request_log_and_state(self):
        seq = self.requests()[-1]["seq"] if self.requests() else 0
        self.c.get(NS + "/tasks")
        self.c.get(NS + "/tasks/none")
        log = self.requests(seq)
        self.assertEqual([(e["verb"], e["resource"], e["status"]) for e in log],
                         [("list", "tasks", 200), ("get", "tasks", 404)])
        st = json.loads(self.c.get("/_fake/state").raw)
        self.assertIn("warmpools", st["counts"])
        self.assertGreaterEqual(st["counts"]["pods"], 2)


class DeadlineTest(ServerTest):
    """The operator's gRPC deadline (HTTP_CLIENT_TIMEOUT) beats a longer spec.timeout."""
    ARGS = ("--pool", "pool-a=1", "--grpc-timeout", "1", "--pod-delay", "0")

    def test_deadline(self):
        self.ready_sandbox("dl", keepAlive=True)
        t = self.run_task("dl1", "dl", [cmd("ok", "echo", "first"), cmd("slow", "sh", "-c", "echo lost; sleep 5")],
                          timeout="10s")
        s = t["status"]
        self.assertEqual(s["exitCode"], 1)
        self.assertEqual(s["stdout"], "first\n")
        self.assertIn("DeadlineExceeded", s["stderr"])


class FaultTest(ServerTest):
    ARGS = ("--pool", "pool-a=1", "--seed", "7", "--pod-delay", "0")

    def tearDown(self):
        self.set_faults("")

    def test_429(self):
        self.set_faults("429=1:retry-after=3")
        r = self.c.get(NS + "/sandboxes")
        self.assertStatus(r, 429, "TooManyRequests")
        self.assertEqual(dict((k.lower(), v) for k, v in r.headers)["retry-after"], "3")
        self.assertEqual(r.json["details"]["retryAfterSeconds"], 3)
        self.assertStatus(self.c.get("/version"), 200)                     # discovery is never faulted
        self.assertStatus(self.c.get(GV), 200)

    def test_500_rate(self):
        self.set_faults("500=0.3,503=0.1")
        codes = [self.c.get(NS + "/tasks").status for _ in range(400)]
        self.assertTrue(90 <= codes.count(500) <= 150, codes.count(500))
        self.assertTrue(20 <= codes.count(503) <= 60, codes.count(503))
        self.assertEqual(len(codes), codes.count(200) + codes.count(500) + codes.count(503))

    def test_scoped_and_after(self):
        self.set_faults("500=1:verbs=create:after=1")
        r = self.c.post(NS + "/sandboxes", sandbox("f-after", pool="np"))
        self.assertStatus(r, 500, "InternalError")
        self.assertStatus(self.c.get(NS + "/sandboxes/f-after"), 200)      # it was created all the same
        self.assertStatus(self.c.post(NS + "/sandboxes", sandbox("f-after", pool="np")), 500)
        self.set_faults("")
        self.assertStatus(self.c.post(NS + "/sandboxes", sandbox("f-after", pool="np")), 409, "AlreadyExists")
        self.c.delete(NS + "/sandboxes/f-after")
        self.set_faults("forbid=delete/sandboxes")
        r = self.c.delete(NS + "/sandboxes/f-after")
        self.assertStatus(r, 403, "Forbidden")
        self.assertIn('cannot delete resource "sandboxes" in API group "arl.infra.io"', r.json["message"])
        # A namespaced Role only: listing across namespaces is forbidden, in one is not.
        self.set_faults("forbid=list/sandboxes:scope=cluster")
        r = self.c.get(GV + "/sandboxes")
        self.assertStatus(r, 403, "Forbidden")
        self.assertIn("at the cluster scope", r.json["message"])
        self.assertStatus(self.c.get(NS + "/sandboxes"), 200)
        self.assertStatus(self.c.post("/_fake/faults", b"forbid=list/sandboxes:scope=ns", ctype="text/plain"), 400)

    def test_reset_and_latency(self):
        self.set_faults("reset=1")
        with self.assertRaises((ConnectionError, http.client.HTTPException, OSError)):
            self.c.get(NS + "/tasks")
        # logged after the connection was reset, so possibly after our next request was served
        wait_for(lambda: (self.requests() or [{}])[-1].get("status") == 0, what="the reset request in the log")
        self.set_faults("latency=300ms")
        t0 = time.time()
        self.assertStatus(self.c.get(NS + "/tasks"), 200)
        self.assertGreaterEqual(time.time() - t0, 0.29)
        self.assertStatus(self.c.post("/_fake/faults", b"bogus=1", ctype="text/plain"), 400)
        self.assertStatus(self.c.post("/_fake/faults", b"latency=1s:verbs=bogus", ctype="text/plain"), 400)
        # Only the requests named (the decision, not a clock: no timing window)
        f = faults.Faults("latency=2s:verbs=create:resources=tasks")
        self.assertEqual(f.decide("create", "tasks").latency, 2.0)
        self.assertFalse(f.decide("get", "tasks").latency)
        self.assertFalse(f.decide("create", "sandboxes").latency)

    def test_watch_faults(self):
        self.set_faults("watch-410=1")
        conn, resp = self.c.watch(NS + "/tasks?watch=1")
        evs = read_events(resp)
        conn.close()
        self.assertEqual([(e["type"], e["object"]["code"]) for e in evs], [("ERROR", 410)])
        self.set_faults("watch-cut=1s")
        t0 = time.time()
        conn, resp = self.c.watch(NS + "/tasks?watch=1&allowWatchBookmarks=true")
        with self.assertRaises((http.client.IncompleteRead, ConnectionError, OSError)):
            while True:
                if not resp.readline():
                    raise AssertionError("stream ended cleanly; expected it to be cut")
        conn.close()
        self.assertLess(time.time() - t0, 5)

    def test_operator_faults(self):
        self.set_faults("sandbox-fail=1")
        self.c.post(NS + "/sandboxes", sandbox("f-fail"))
        sb = self.wait_obj(NS + "/sandboxes/f-fail", lambda o: (o.get("status") or {}).get("phase") == "Failed")
        self.assertNotIn("conditions", sb["status"])
        self.c.delete(NS + "/sandboxes/f-fail")
        self.wait_gone(NS + "/sandboxes/f-fail")
        # :max=1: exactly the next Sandbox fails, then none
        self.set_faults("sandbox-fail=1:max=1")
        self.c.post(NS + "/sandboxes", sandbox("f-max1"))
        self.wait_obj(NS + "/sandboxes/f-max1", lambda o: (o.get("status") or {}).get("phase") == "Failed")
        self.c.post(NS + "/sandboxes", sandbox("f-max2"))
        self.wait_obj(NS + "/sandboxes/f-max2", lambda o: (o.get("status") or {}).get("phase") == "Ready")
        for n in ("f-max1", "f-max2"):
            self.c.delete(NS + "/sandboxes/" + n)
            self.wait_gone(NS + "/sandboxes/" + n)
        self.set_faults("no-idle=pool-z")
        self.c.post(NS + "/warmpools", warmpool("pool-z", replicas=1))
        self.c.post(NS + "/sandboxes", sandbox("f-z", pool="pool-z"))
        time.sleep(1)
        self.assertEqual(self.c.get(NS + "/sandboxes/f-z").json["status"]["phase"], "Pending")
        self.assertEqual(self.c.get(NS + "/warmpools/pool-z").json["status"]["readyReplicas"], 0)
        self.c.delete(NS + "/sandboxes/f-z")
        self.c.delete(NS + "/warmpools/pool-z")

    def test_down(self):
        r = self.c.post("/_fake/down?seconds=2", b"")
        self.assertEqual(r.status, 200)
        with self.assertRaises((ConnectionError, http.client.HTTPException, OSError)):
            self.c.get(NS + "/tasks")
        wait_for(lambda: self.up() is not None, 30, what="the server up again")
        self.assertStatus(self.c.get(NS + "/tasks"), 200)

    def up(self):
        try:
            return self.c.get("/_fake/state").json
        except (ConnectionError, http.client.HTTPException, OSError):
            return None

    def test_down_after_creates_then_faults_that_run_out(self):
        # The outage starts at the third create, whatever the clock says, and installs faults
        # that stop after two injections.
        r = self.c.post("/_fake/down?seconds=1&after=2&resource=sandboxes", b"503=1:verbs=create:max=2",
                        ctype="text/plain")
        self.assertEqual(r.status, 200, r.raw)
        self.assertTrue(self.c.get("/_fake/state").json["down"]["pending"])
        self.assertStatus(self.c.get(NS + "/sandboxes"), 200)              # only creates count,
        self.assertStatus(self.c.post(NS + "/tasks", task("d-t", "nowhere", [cmd("s", "true")])), 201)
        self.c.delete(NS + "/tasks/d-t")                                   # ... of sandboxes
        for i in range(2):
            self.assertStatus(self.c.post(NS + "/sandboxes", sandbox("d-%d" % i, pool="np")), 201)
        with self.assertRaises((ConnectionError, http.client.HTTPException, OSError)):
            self.c.post(NS + "/sandboxes", sandbox("d-2", pool="np"))
        st = wait_for(self.up, what="the server back")
        self.assertFalse(st["down"]["pending"])
        self.assertAlmostEqual(st["down"]["until"] - st["down"]["since"], 1.0, places=3)
        self.assertEqual(st["faults"], "503=1:verbs=create:max=2")
        self.assertEqual([e["fault"] for e in self.requests() if e["status"] == 0][-1:], ["down"])
        self.assertStatus(self.c.get(NS + "/sandboxes/d-2"), 404)          # reset, not carried out
        for _ in range(2):
            self.assertStatus(self.c.post(NS + "/sandboxes", sandbox("d-2", pool="np")), 503)
        self.assertStatus(self.c.post(NS + "/sandboxes", sandbox("d-2", pool="np")), 201)
        for i in range(3):
            self.c.delete(NS + "/sandboxes/d-%d" % i)
        self.assertStatus(self.c.post("/_fake/down?after=1", b"bogus=1", ctype="text/plain"), 400)
        self.assertFalse(self.c.get("/_fake/state").json["down"]["pending"])


class AuthTest(ServerTest):
    ARGS = ("--token", "s3cret", "--token", "other")

    def test_token(self):
        anon = Client(self.srv.url)
        r = anon.get(NS + "/tasks")
        self.assertStatus(r, 401, "Unauthorized")
        self.assertStatus(Client(self.srv.url, token="wrong").get(NS + "/tasks"), 401)
        self.assertStatus(Client(self.srv.url, token="s3cret").get(NS + "/tasks"), 200)
        self.assertStatus(Client(self.srv.url, token="other").get(GV), 200)
        self.assertStatus(anon.get(GV), 401)                                 # discovery needs auth too
        self.assertStatus(anon.get("/version"), 200)                         # public, as on a cluster
        self.assertIn('token: "s3cret"', open(self.srv.kubeconfig).read())
        self.assertEqual(anon.post("/_fake/tokens", b"new-one\n", ctype="text/plain").status, 200)
        self.assertStatus(Client(self.srv.url, token="s3cret").get(NS + "/tasks"), 401)
        self.assertStatus(Client(self.srv.url, token="new-one").get(NS + "/tasks"), 200)


def kubeconfig_ca(path):
    text = open(path).read()
    m = re.search(r'certificate-authority-data: "([^"]+)"', text)
    return base64.b64decode(m.group(1)).decode()


class TlsTest(ServerTest):
    ARGS = ("--tls", "--token", "tok", "--client-cert")

    def test_tls(self):
        self.assertTrue(self.srv.url.startswith("https://127.0.0.1:"))
        ctx = ssl.create_default_context(cadata=kubeconfig_ca(self.srv.kubeconfig))
        c = Client(self.srv.url, token="tok", ssl_context=ctx)
        self.assertStatus(c.get(NS + "/sandboxes"), 200)
        # the certificate is also valid for "localhost"
        with socket.create_connection(("127.0.0.1", self.srv.port)) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                self.assertTrue(t.getpeercert())
        # an unknown CA is refused
        with self.assertRaises(ssl.SSLError):
            Client(self.srv.url, ssl_context=ssl.create_default_context()).get("/version")
        self.assertStatus(Client(self.srv.url, ssl_context=ctx).get(NS + "/sandboxes"), 401)

    def test_client_certificate(self):
        text = open(self.srv.kubeconfig).read()
        crt = base64.b64decode(re.search(r'client-certificate-data: "([^"]+)"', text).group(1))
        key = base64.b64decode(re.search(r'client-key-data: "([^"]+)"', text).group(1))
        d = tempfile.mkdtemp()
        try:
            open(os.path.join(d, "c.crt"), "wb").write(crt)
            open(os.path.join(d, "c.key"), "wb").write(key)
            ctx = ssl.create_default_context(cadata=kubeconfig_ca(self.srv.kubeconfig))
            ctx.load_cert_chain(os.path.join(d, "c.crt"), os.path.join(d, "c.key"))
            self.assertStatus(Client(self.srv.url, ssl_context=ctx).get(NS + "/sandboxes"), 200)
        finally:
            shutil.rmtree(d)


def find_kubectl():
    k = os.environ.get("KUBECTL") or shutil.which("kubectl")
    if not k:
        return None
    try:
        subprocess.run([k, "version", "--client"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                       check=True)
    except Exception:
        return None
    return k


@unittest.skipUnless(find_kubectl(), "kubectl not found (set KUBECTL or install kubernetes-client)")
class KubectlTest(ServerTest):
    ARGS = ("--tls", "--token", "kube-token")

    def kubectl(self, *args):
        cache = os.path.join(self.srv.tmp, "kcache")
        r = subprocess.run([find_kubectl(), "--kubeconfig", self.srv.kubeconfig, "--cache-dir", cache] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
        return r.returncode, r.stdout

    def test_apply_get_delete_sample(self):
        sample = os.path.join(SAMPLES, "warmpool.yaml")
        rc, out = self.kubectl("apply", "-f", sample)
        self.assertEqual(rc, 0, out)
        self.assertIn("warmpool.arl.infra.io/python-39-std created", out)
        rc, out = self.kubectl("get", "warmpools")
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"(?m)^python-39-std\s")
        # a changed manifest is applied as a merge patch
        changed = os.path.join(self.srv.tmp, "wp.yaml")
        with open(sample) as fh, open(changed, "w") as out_fh:
            out_fh.write(fh.read().replace("replicas: 2", "replicas: 3"))
        rc, out = self.kubectl("apply", "-f", changed)
        self.assertEqual(rc, 0, out)
        self.assertIn("configured", out)
        c = self.c
        self.assertEqual(c.get(NS + "/warmpools/python-39-std").json["spec"]["replicas"], 3)
        patches = [e for e in self.requests() if e["verb"] == "patch"]
        self.assertEqual([e["contentType"].split(";")[0] for e in patches], ["application/merge-patch+json"])
        rc, out = self.kubectl("get", "warmpool", "python-39-std", "-o", "json")
        self.assertEqual(json.loads(out)["spec"]["replicas"], 3)
        rc, out = self.kubectl("delete", "warmpool", "python-39-std")
        self.assertEqual(rc, 0, out)
        self.assertIn('"python-39-std" deleted', out)
        self.assertStatus(c.get(NS + "/warmpools/python-39-std"), 404)
        rc, out = self.kubectl("get", "warmpools")
        self.assertEqual(rc, 0, out)
        self.assertNotIn("python-39-std", out)


class NoBwrapTest(ServerTest):
    """--no-bwrap: steps run on the host with cwd mapped into the pod directory."""
    ARGS = ("--pool", "pool-a=1", "--no-bwrap", "--pod-delay", "0")

    def test_relative_paths_work(self):
        self.ready_sandbox("nb", keepAlive=True)
        t = self.run_task("nb1", "nb", [{"name": "w", "type": "FilePatch", "path": "/workspace/d/a.txt",
                                         "content": "A\n"},
                                        cmd("c", "cat", "a.txt", workDir="/workspace/d"), cmd("p", "pwd")])
        self.assertEqual(t["status"]["state"], "Succeeded", t["status"])
        out = t["status"]["stdout"].splitlines()
        self.assertEqual(out[:2], ["File created: /workspace/d/a.txt", "A"])
        self.assertTrue(out[2].endswith("/vol-workspace"), out[2])     # the host path shows through
        self.assertFalse(json.loads(self.c.get("/_fake/state").raw)["bwrap"])


def procs_with_env(entry):
    """Host pids whose environment holds entry (bytes, NAME=VALUE)."""
    pids = []
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/environ" % pid, "rb") as fh:
                if entry in fh.read().split(b"\0"):
                    pids.append(int(pid))
        except (OSError, ValueError):
            continue
    return pids


class PodContainerTest(ServerTest):
    """A pod is one persistent container: steps of every Task on a Sandbox share its
    processes, /tmp and a writable root whose writes never reach the host; the timer kills
    the direct process only; deleting the Sandbox (its pod) ends everything in it."""
    ARGS = ("--pool", "pool-a=2", "--pod-delay", "0")

    def setUp(self):
        if not json.loads(self.c.get("/_fake/state").raw)["podContainers"]:
            self.skipTest("bwrap cannot run pod containers here")

    def test_steps_share_one_container(self):
        mark = "FAKE_ARL_TEST_MARK=%d" % os.getpid()
        self.ready_sandbox("pc", keepAlive=True)
        t = self.run_task("pc1", "pc", [cmd("w", "sh", "-c",
                                            "sleep 300 </dev/null >/dev/null 2>&1 & echo $! > /tmp/bg.pid; "
                                            "echo kept > /tmp/t; mkdir -p /usr/local/share/fake-arl-test; "
                                            "echo installed > /usr/local/share/fake-arl-test/f; "
                                            "echo etc > /etc/fake-arl-test; echo root > /fake-arl-test",
                                            env={mark.split("=")[0]: mark.split("=")[1]})])
        self.assertEqual((t["status"]["state"], t["status"].get("stderr", "")), ("Succeeded", ""), t["status"])
        t = self.run_task("pc2", "pc", [cmd("r", "sh", "-c",
                                            "kill -0 $(cat /tmp/bg.pid) && echo alive; "
                                            "cat /tmp/t /usr/local/share/fake-arl-test/f /etc/fake-arl-test "
                                            "/fake-arl-test; cat /proc/1/comm; id -u; cat /proc/self/uid_map")])
        self.assertEqual(t["status"]["state"], "Succeeded", t["status"])
        out = t["status"]["stdout"].split()
        self.assertEqual(out[:7], ["alive", "kept", "installed", "etc", "root", "bwrap", "0"])
        uid = "65533" if os.geteuid() == 0 else str(os.geteuid())
        self.assertEqual(out[7:], ["0", uid, "1"])          # uid 0 inside is no host root
        for p in ("/usr/local/share/fake-arl-test", "/etc/fake-arl-test", "/fake-arl-test"):
            self.assertFalse(os.path.exists(p), p)
        self.assertEqual(len(procs_with_env(mark.encode())), 1)     # the background sleep
        self.assertStatus(self.c.delete(NS + "/sandboxes/pc"), 200)
        self.wait_gone(NS + "/sandboxes/pc")
        wait_for(lambda: not procs_with_env(mark.encode()), what="the pod's processes to end")

    def test_timer_kills_the_direct_process_only(self):
        self.ready_sandbox("pt", keepAlive=True)
        t = self.run_task("pt1", "pt", [cmd("k", "sh", "-c",
                                            "sleep 300 </dev/null >/dev/null 2>&1 & echo $! > /tmp/child.pid; "
                                            "echo started; wait")], timeout="1s")
        self.assertEqual((t["status"]["state"], t["status"]["exitCode"], t["status"]["stdout"]),
                         ("Failed", -1, "started\n"))
        t = self.run_task("pt2", "pt", [cmd("c", "sh", "-c", "kill -0 $(cat /tmp/child.pid) && echo child alive"),
                                        cmd("s", "sh", "-c", "kill -TERM $$")])
        self.assertEqual(t["status"]["stdout"], "child alive\n")
        self.assertEqual(t["status"]["exitCode"], -1)       # a signal: -1, as a real pod says
        self.assertStatus(self.c.delete(NS + "/sandboxes/pt"), 200)
        self.wait_gone(NS + "/sandboxes/pt")

    def test_filepatch_belongs_to_the_steps(self):
        self.ready_sandbox("pf", keepAlive=True)
        t = self.run_task("pf1", "pf", [{"name": "p", "type": "FilePatch", "path": "/workspace/d/e/p.sh",
                                         "content": "echo one\n"},
                                        cmd("c", "sh", "-c", "echo 'echo two' >> /workspace/d/e/p.sh && "
                                            "sh /workspace/d/e/p.sh && touch /workspace/d/new")])
        self.assertEqual((t["status"]["state"], t["status"]["stdout"]),
                         ("Succeeded", "File created: /workspace/d/e/p.sh\none\ntwo\n"), t["status"])
        self.assertStatus(self.c.delete(NS + "/sandboxes/pf"), 200)
        self.wait_gone(NS + "/sandboxes/pf")


class StressTest(ServerTest):
    """Many sessions at once through 5xx/429/resets and cut watches: every one ends with
    the right output, and nothing is left behind."""
    ARGS = ("--pool", "pool-a=4", "--pod-delay", "0.05", "--sandbox-delay", "0.01", "--retry-interval", "0.1",
            "--pending-interval", "0.1", "--task-workers", "4",
            "--faults", "500=0.1,503=0.05,429=0.05:retry-after=0,reset=0.02,watch-cut=1s")
    JOBS, THREADS = 40, 8

    def call(self, method, path, body=None, ok=(200, 201), tolerate=()):
        for _ in range(60):
            try:
                r = self.c.req(method, path, body)
            except (ConnectionError, http.client.HTTPException, OSError):
                time.sleep(0.02)
                continue
            if r.status in ok or r.status in tolerate:
                return r
            if r.status in (429, 500, 503):
                time.sleep(0.02)
                continue
            raise AssertionError("%s %s: %d %s" % (method, path, r.status, r.raw[:300]))
        raise AssertionError("%s %s: no success after retries" % (method, path))

    def wait(self, path, pred, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            r = self.call("GET", path, tolerate=(404,))
            if r.status == 200 and pred(r.json):
                return r.json
            time.sleep(0.05)
        raise AssertionError("timeout on " + path)

    def job(self, i):
        name = "st-%d" % i
        self.call("POST", NS + "/sandboxes", sandbox(name, keepAlive=True), tolerate=(409,))
        self.wait(NS + "/sandboxes/" + name, lambda o: (o.get("status") or {}).get("phase") == "Ready")
        for k in range(2):
            tn = "%s-t%d" % (name, k)
            self.call("POST", NS + "/tasks", task(tn, name, [
                cmd("w", "sh", "-c", "echo %d-%d >> /workspace/log; cat /workspace/log" % (i, k))],
                timeout="10s"), tolerate=(409,))
            t = self.wait(NS + "/tasks/" + tn, lambda o: (o.get("status") or {}).get("state") in ("Succeeded", "Failed"))
            self.assertEqual(t["status"]["stdout"], "".join("%d-%d\n" % (i, j) for j in range(k + 1)))
            self.call("DELETE", NS + "/tasks/" + tn, tolerate=(404,))
        self.call("DELETE", NS + "/sandboxes/" + name, tolerate=(404,))

    def test_many_sessions(self):
        import concurrent.futures
        watch_errors = []

        def watcher(stop):
            # a client-side informer: reconnects after every cut
            rv = "0"
            while not stop.is_set():
                try:
                    conn, resp = self.c.watch(NS + "/sandboxes?watch=1&allowWatchBookmarks=true&resourceVersion=" + rv, 5)
                    if resp.status != 200:
                        resp.read()
                        conn.close()
                        continue
                    while not stop.is_set():
                        line = resp.readline()
                        if not line:
                            break
                        ev = json.loads(line)
                        if ev["type"] == "ERROR":
                            rv = "0"
                            break
                        rv = ev["object"]["metadata"]["resourceVersion"]
                except (ConnectionError, http.client.HTTPException, OSError, ValueError):
                    pass
                except Exception as e:      # pragma: no cover
                    watch_errors.append(e)
        import threading
        stop = threading.Event()
        wt = threading.Thread(target=watcher, args=(stop,), daemon=True)
        wt.start()
        with concurrent.futures.ThreadPoolExecutor(self.THREADS) as ex:
            for f in [ex.submit(self.job, i) for i in range(self.JOBS)]:
                f.result()
        stop.set()
        self.assertEqual(watch_errors, [])
        self.set_faults("")
        wait_for(lambda: json.loads(self.c.get("/_fake/state").raw)["counts"]["sandboxes"] == 0, 20,
                 what="all sandboxes gone")
        st = json.loads(self.c.get("/_fake/state").raw)
        self.assertEqual(st["counts"]["tasks"], 0)
        wait_for(lambda: len(json.loads(self.c.get("/_fake/state").raw)["pods"]) == 4, 10, what="pool back to 4 pods")
        log = self.requests()
        faults = [e["fault"] for e in log if e["fault"]]
        self.assertTrue(faults, "no faults were injected")
        self.assertTrue(any(e["watch"] for e in log))


class LifecycleTest(unittest.TestCase):
    def test_sigterm_cleans_up(self):
        wd = tempfile.mkdtemp(prefix="fake-arl-wd.")
        try:
            srv = FakeServer("--pool", "p=2", "--workdir", wd, "--pod-delay", "0")
            c = srv.client()
            wait_for(lambda: len(json.loads(c.get("/_fake/state").raw)["pods"]) == 2, what="pods")
            self.assertEqual(len(os.listdir(wd)), 2)
            srv.proc.send_signal(signal.SIGTERM)
            self.assertEqual(srv.proc.wait(15), 0)
            self.assertEqual(os.listdir(wd), [])
            srv.stop()
        finally:
            shutil.rmtree(wd, ignore_errors=True)

    def test_bad_arguments(self):
        for args in (["--listen", "0.0.0.0:0"], ["--faults", "nonsense=1"], ["--client-cert"]):
            r = subprocess.run([PY, SERVER] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            self.assertNotEqual(r.returncode, 0, args)


def main():
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    if len(sys.argv) > 1:
        suite = unittest.defaultTestLoader.loadTestsFromNames(sys.argv[1:], sys.modules[__name__])
    res = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    skipped = len(res.skipped)
    print("%d passed, %d failed, %d skipped" % (res.testsRun - failed - skipped, failed, skipped))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
