#!/usr/bin/env python3
"""The ARL SDK's way of driving one-step jobs through a gateway, as a baseline for
bench/gateway_throughput.sh.

What arl-env 0.21's `with SandboxSession(image=...) as s: s.execute([step])` sends
(../shared/arl-gateway.md section 3): POST /v1/sessions (blocks until allocated, 201), POST
/v1/sessions/{id}/execute with one step and a fresh uuid4 operationID; on 202, GET
/v1/sessions/{id}/operations/{op} every 2.0 s (OPERATION_POLL_INTERVAL_SECONDS) until "done" or
"error", re-POSTing the execute when a poll gets 404 about the operation; a 200 is the result
itself; then DELETE /v1/sessions/{id}. IN_FLIGHT sessions at once, one thread each (the sync
SDK runs one session per thread). Not the SDK: a 429 is waited out (Retry-After) and the
request sent again, so the run completes where the SDK would raise; those are counted.
Standard library only.

Usage: gateway_sdk_client.py --url URL [--api-key KEY] (--image IMG | --profile P) --jobs N
                             --in-flight C [--poll 2.0] [--command ARG...]
URL and KEY default to $ARL_GATEWAY_URL and $ARL_API_KEY.
Prints one JSON line: jobs, ok, wall_s, requests (sent by this client), throttled (429s),
cpu_s (this process), step_ms (each job's execute-to-result time, sorted), job_ms (create to
delete, sorted).
"""
import argparse
import http.client
import json
import os
import time
import urllib.parse
import uuid

import sdk_pool


class Client:
    def __init__(self, url, key):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port or 80
        self.key = key
        self.conn = None
        self.requests = 0
        self.throttled = 0

    def call(self, method, path, body=None):
        hdr = {"Accept": "application/json"}
        if self.key:
            hdr["Authorization"] = "Bearer " + self.key
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            hdr["Content-Type"] = "application/json"
        resets = 0
        while True:
            if self.conn is None:
                # The SDK's httpx read timeout is 300 s; a create blocks until allocated.
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=300)
            try:
                self.requests += 1
                self.conn.request(method, path, body=data, headers=hdr)
                r = self.conn.getresponse()
                raw = r.read()
            except (http.client.HTTPException, OSError):
                # httpx retries=3 is connect-level; one more for a closed keep-alive socket.
                self.conn.close()
                self.conn = None
                resets += 1
                if resets > 3:
                    raise
                continue
            if r.status == 429:
                self.throttled += 1
                time.sleep(float(r.getheader("Retry-After") or 1))
                continue
            try:
                doc = json.loads(raw) if raw else {}
            except ValueError:
                doc = {"error": raw.decode(errors="replace")}
            return r.status, doc


def execute(c, sid, step, poll):
    """One step the SDK's way; returns the ExecuteResponse or None."""
    op = str(uuid.uuid4())
    body = {"steps": [step], "operationID": op}
    path = "/v1/sessions/%s/execute" % sid
    st, doc = c.call("POST", path, body)
    if st == 200:
        return doc
    if st != 202:
        return None
    while True:
        time.sleep(poll)
        st, doc = c.call("GET", "/v1/sessions/%s/operations/%s" % (sid, op))
        if st == 404 and "operation" in (doc.get("error") or ""):
            st, doc = c.call("POST", path, body)  # forgotten (restart): the SDK re-submits
            if st == 200:
                return doc
            if st != 202:
                return None
            continue
        if st != 200:
            return None
        if doc.get("status") == "done":
            return doc.get("result")
        if doc.get("status") == "error":
            return None


def one_job(c, create, command, poll, lat):
    t0 = time.monotonic()
    st, info = c.call("POST", "/v1/sessions", create)
    if st != 201:
        return False
    sid = info["id"]
    ok = False
    try:
        t1 = time.monotonic()
        res = execute(c, sid, {"name": "step", "command": command}, poll)
        lat["step"].append((time.monotonic() - t1) * 1000.0)
        ok = bool(res and res.get("results") and res["results"][0]["output"]["exit_code"] == 0)
    finally:
        c.call("DELETE", "/v1/sessions/" + sid)
    lat["job"].append((time.monotonic() - t0) * 1000.0)
    return ok


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default=os.environ.get("ARL_GATEWAY_URL"))
    ap.add_argument("--api-key", default=os.environ.get("ARL_API_KEY"))
    ap.add_argument("--image")
    ap.add_argument("--profile")
    ap.add_argument("--jobs", type=int, required=True)
    ap.add_argument("--in-flight", type=int, required=True)
    ap.add_argument("--poll", type=float, default=2.0)
    ap.add_argument("--command", nargs="+", default=["true"])
    a = ap.parse_args()
    if not a.url or not (a.image or a.profile):
        ap.error("--url (or $ARL_GATEWAY_URL) and --image or --profile are needed")
    create = {}
    if a.image:
        create["image"] = a.image
    if a.profile:
        create["profile"] = a.profile
    lat = {"step": [], "job": []}  # list.append is atomic under the GIL
    ok, wall, cpu, clients = sdk_pool.run(
        a.jobs, a.in_flight, lambda: Client(a.url, a.api_key),
        lambda c, _i: one_job(c, create, a.command, a.poll, lat),
        catch=(http.client.HTTPException, OSError, KeyError, ValueError))
    print(json.dumps({"jobs": a.jobs, "ok": ok, "wall_s": wall,
                      "requests": sum(c.requests for c in clients),
                      "throttled": sum(c.throttled for c in clients),
                      "cpu_s": cpu,
                      "step_ms": sorted(round(x, 1) for x in lat["step"]),
                      "job_ms": sorted(round(x, 1) for x in lat["job"])}))


if __name__ == "__main__":
    main()
