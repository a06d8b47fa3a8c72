#!/usr/bin/env python3
"""The seed SDK's way of driving ARL jobs, as a baseline for the Kubernetes benchmark.

For each job: create a Sandbox (poolRef, keepAlive), poll it with a GET every 1 s until its
phase is Ready, create one Task with the job's Command step, poll it with a GET every 0.5 s
until its state is Succeeded or Failed, then delete the Task and the Sandbox. IN_FLIGHT jobs
run at once, one thread each (the SDK is synchronous: one SandboxSession per thread).
Standard library only; plain HTTP with the kubeconfig's bearer token if it has one.

Usage: sdk_client.py --kubeconfig PATH --pool NAME --jobs N --in-flight C [--command ARG...]
Prints one JSON line: jobs, ok, wall_s, requests (sent by this client), cpu_s (this process).
"""
import argparse
import http.client
import json
import os
import re
import time
import urllib.parse

import sdk_pool

GROUP = "/apis/arl.infra.io/v1alpha1/namespaces/%s/%s"


def kubeconfig(path):
    # The fake server's kubeconfig: server URL, namespace, maybe a token (flat YAML).
    text = open(path).read()
    server = re.search(r"server:\s*\"?([^\s\"]+)", text).group(1)
    ns = re.search(r"namespace:\s*\"?([^\s\"]+)", text)
    tok = re.search(r"token:\s*\"?([^\s\"]+)", text)
    return server, (ns.group(1) if ns else "default"), (tok.group(1) if tok else None)


class Client:
    def __init__(self, server, token):
        u = urllib.parse.urlparse(server)
        self.host, self.port = u.hostname, u.port
        self.token = token
        self.conn = None
        self.requests = 0

    def call(self, method, path, body=None):
        hdr = {"Accept": "application/json"}
        if self.token:
            hdr["Authorization"] = "Bearer " + self.token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdr["Content-Type"] = "application/json"
        for _ in range(2):  # one reconnect (keep-alive closed by the server)
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                self.requests += 1
                self.conn.request(method, path, body=data, headers=hdr)
                r = self.conn.getresponse()
                raw = r.read()
                return r.status, (json.loads(raw) if raw else {})
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
        raise RuntimeError("%s %s failed" % (method, path))


def one_job(c, ns, pool, command, name):
    sbp, tkp = GROUP % (ns, "sandboxes"), GROUP % (ns, "tasks")
    st, _ = c.call("POST", sbp, {"apiVersion": "arl.infra.io/v1alpha1", "kind": "Sandbox",
                                 "metadata": {"name": name, "namespace": ns},
                                 "spec": {"poolRef": pool, "keepAlive": True}})
    if st >= 300:
        return False
    while True:  # wait_for_ready: a GET every second
        time.sleep(1.0)
        st, o = c.call("GET", sbp + "/" + name)
        phase = (o.get("status") or {}).get("phase")
        if phase == "Ready":
            break
        if phase == "Failed":
            return False
    tname = name + "-t1"
    c.call("POST", tkp, {"apiVersion": "arl.infra.io/v1alpha1", "kind": "Task",
                         "metadata": {"name": tname, "namespace": ns},
                         "spec": {"sandboxRef": name, "timeout": "30s",
                                  "steps": [{"name": "step", "type": "Command",
                                             "command": command}]}})
    while True:  # wait for the task: a GET every 0.5 s
        time.sleep(0.5)
        st, o = c.call("GET", tkp + "/" + tname)
        state = (o.get("status") or {}).get("state")
        if state in ("Succeeded", "Failed"):
            break
    c.call("DELETE", tkp + "/" + tname)
    c.call("DELETE", sbp + "/" + name)
    return state == "Succeeded"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--pool", required=True)
    ap.add_argument("--jobs", type=int, required=True)
    ap.add_argument("--in-flight", type=int, required=True)
    ap.add_argument("--command", nargs="+", default=["true"])
    a = ap.parse_args()
    server, ns, token = kubeconfig(a.kubeconfig)
    prefix = "sdk-%d-%d" % (os.getpid(), int(time.time()))
    ok, wall, cpu, clients = sdk_pool.run(
        a.jobs, a.in_flight, lambda: Client(server, token),
        lambda c, i: one_job(c, ns, a.pool, a.command, "%s-%d" % (prefix, i)))
    print(json.dumps({"jobs": a.jobs, "ok": ok, "wall_s": wall,
                      "requests": sum(c.requests for c in clients), "cpu_s": cpu}))


if __name__ == "__main__":
    main()
