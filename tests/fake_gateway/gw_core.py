"""The fake gateway's state and semantics: sessions, pools, steps, operations, files.

Each session is one fake pod: ONE persistent container (tests/fake_arl/pod_container.py,
the same model as the fake ARL server's pods and the local sandboxes) whose agent runs
every step and moves every uploaded and downloaded file. Behaviour follows
../shared/arl-gateway.md (Lincyaw/agent-env c34cc73): see README.md for the list.
"""

import hashlib
import json
import os
import re
import secrets
import sys
import threading
import time

sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fake_arl"))
import pipe_reader                      # noqa: E402
import pod_container                    # noqa: E402

BASE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"}
PREVIEW = 4096                          # history keeps this much of each output
WORKSPACE_VOLUMES = {"/workspace": "workspace"}


class GatewayError(Exception):
    """An error the gateway answers with writeGatewayError: the status comes from the
    message as httpStatusForError does (see status_for)."""

    def __init__(self, msg, status=None):
        super().__init__(msg)
        self.status = status


def status_for(msg):
    """httpStatusForError: by message string."""
    if "not found" in msg:
        return 404
    if "only devbox sessions" in msg or "invalid session mode" in msg or "is required" in msg:
        return 400
    return 500


def now_rfc3339(t=None):
    """Go's time.Time JSON (RFC 3339 with nanoseconds, trailing zeros dropped), UTC."""
    t = time.time() if t is None else t
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))
    frac = ("%.9f" % (t - int(t)))[2:].rstrip("0")
    return base + ("." + frac if frac else "") + "Z"


def go_duration(seconds):
    """Go's Duration.String() for whole/fractional seconds (e.g. 2s, 1m30s, 1.5s)."""
    if seconds < 60:
        s = ("%.9f" % seconds).rstrip("0").rstrip(".")
        return (s or "0") + "s"
    m, s = divmod(seconds, 60)
    h, m = divmod(int(m), 60)
    out = ("%dh" % h if h else "") + "%dm" % m
    return out + go_duration(s)


def normalize_image(image):
    if image.startswith("docker.io/library/"):
        image = image[len("docker.io/library/"):]
    if ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
        image += ":latest"
    return image


def slug(s, limit=40):
    out = re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")
    return (out[:limit].rstrip("-")) or "session"


class Pool:
    def __init__(self, name, image, profile, namespace, managed, replicas=1):
        self.name = name
        self.image = image
        self.profile = profile
        self.namespace = namespace
        self.managed = managed          # image-backed: scaled to 0 when its last session goes
        self.replicas = replicas
        self.allocated = 0
        self.queued = 0
        self.state = "running"
        self.created = time.time()
        self.scale_events = []          # ("up"|"stopped", replicas): what tests check

    def info(self):
        return {"name": self.name, "namespace": self.namespace, "profile": self.profile, "image": self.image,
                "replicas": self.replicas, "readyReplicas": max(0, self.replicas - self.allocated),
                "allocatedReplicas": self.allocated, "state": self.state, "createdAt": now_rfc3339(self.created),
                "conditions": []}


class Operation:
    def __init__(self, op_id, session_id, req_hash):
        self.id = op_id
        self.session_id = session_id
        self.hash = req_hash
        self.status = "running"
        self.result = None
        self.error = None
        self.created = self.started = time.time()
        self.finished = None
        self.done = threading.Event()

    def info(self):
        d = {"operationID": self.id, "sessionID": self.session_id, "status": self.status,
             "createdAt": now_rfc3339(self.created), "startedAt": now_rfc3339(self.started)}
        if self.result is not None:
            d["result"] = self.result
        if self.error:
            d["error"] = self.error
        if self.finished is not None:
            d["finishedAt"] = now_rfc3339(self.finished)
        return d


class FakePod:
    """What pod_container.Container.start needs: a directory and the volumes to bind. The
    pod template (sandbox_template_builder.go) mounts a `workspace` emptyDir at /workspace."""

    def __init__(self, root):
        self.root = root
        self.mounts = {}
        for mp, vol in WORKSPACE_VOLUMES.items():
            host = os.path.join(root, "vol-" + vol)
            os.makedirs(host)
            os.chmod(host, 0o777)         # an emptyDir is world-writable
            self.mounts[mp] = host
        self.deleting = False


class Session:
    def __init__(self, sid, owner, req, pool, pod, container):
        self.id = sid
        self.owner = owner
        self.pool = pool
        self.pod = pod
        self.container = container
        self.image = pool.image if pool.managed else req.get("image", "")
        self.profile = pool.profile
        self.namespace = pool.namespace
        self.created = time.time()
        self.last_active = self.created
        self.idle_timeout = req.get("idleTimeoutSeconds") or 0
        self.allow_internet = req.get("allowInternet")
        self.busy = 0                   # executes/transfers running: never reaped then
        self.running = []               # names of the steps running now
        self.next_index = 0
        self.history = []
        self.operations = {}
        self.deleted = False
        self.deleted_at = None
        self.deletion_reason = ""

    def info(self):
        d = {"id": self.id, "sandboxName": self.id, "namespace": self.namespace, "podIP": "127.0.0.1",
             "podName": self.id, "createdAt": now_rfc3339(self.created), "status": "deleted" if self.deleted else "active"}
        if self.image:
            d["image"] = self.image
        if self.profile:
            d["profile"] = self.profile
        if self.deleted:
            d["deletedAt"] = now_rfc3339(self.deleted_at)
            d["deletionReason"] = self.deletion_reason
        return d


def _json_str(b):
    return b.decode("utf-8", "replace")


class _Reader(threading.Thread):
    """Reads one output pipe of a step in chunks (the agent's 64 KiB output events);
    once the step's process has exited, stops at EOF or after 0.1 s of quiet (a
    background child holding the pipe must not hold the step open)."""

    def __init__(self, fd, which, on_chunk):
        super().__init__(daemon=True)
        self.fd = fd
        self.which = which
        self.on_chunk = on_chunk
        self.data = bytearray()
        self.exited = threading.Event()

    def run(self):
        pipe_reader.drain(self.fd, self._chunk, self.exited)

    def _chunk(self, data):
        self.data += data
        if self.on_chunk:
            self.on_chunk(self.which, data)


def executor_error(reply_or_text, errno=None):
    if isinstance(reply_or_text, dict):
        errno, text = reply_or_text.get("errno", 0), reply_or_text.get("error", "")
    else:
        text = reply_or_text
    return "executor error: [%d] %s" % (errno or 0, text)


def _start_error_text(msg, errno):
    """The Rust agent's spawn error (io::Error Display) for the fake agent's Go-style text."""
    if errno == 13:
        return executor_error("Permission denied (os error 13)", 13)
    return executor_error("No such file or directory (os error 2)", 2)


def step_request_json(step):
    """StepRequest re-marshalled as Go does: field order, omitempty, unknown fields gone."""
    out = {"name": step.get("name", "")}
    if step.get("command"):
        out["command"] = step["command"]
    if step.get("env"):
        out["env"] = step["env"]
    if step.get("workDir"):
        out["workDir"] = step["workDir"]
    if step.get("timeoutSeconds"):
        out["timeoutSeconds"] = step["timeoutSeconds"]
    if step.get("timeout"):
        out["timeout"] = step["timeout"]
    return out


def request_hash(req):
    """operationRequestHash: the request re-marshalled without operationID."""
    norm = {"steps": [step_request_json(s) for s in req["steps"]]}
    if req.get("traceID"):
        norm["traceID"] = req["traceID"]
    return hashlib.sha256(json.dumps(norm, separators=(",", ":"), sort_keys=False).encode()).hexdigest()


class Gateway:
    def __init__(self, workdir, cfg, faults, log=None):
        self.workdir = workdir
        self.cfg = cfg                  # dict, see server.py DEFAULTS; /_fake/config changes it
        self.faults = faults
        self.log = log or (lambda *a: None)
        self.mu = threading.Condition()
        self.sessions = {}
        self.tombstones = {}            # deleted sessions, kept with cfg["redis"] (410 on GET)
        self.pools = {}
        self.generation = 0             # bumped by a restart: results of older operations are dropped
        self.shared = pod_container.Shared(os.path.join(workdir, "shared"))
        self.bwrap = _which("bwrap")
        self.ro_dirs, self.links = pod_container.host_view()
        self.stopping = threading.Event()
        self.starter = _Starter(4)

    # ---- pools ------------------------------------------------------------------------

    def add_profile_pool(self, name, profile, image, replicas):
        with self.mu:
            self.pools[name] = Pool(name, normalize_image(image), profile, self.cfg["namespace"], False, replicas)

    def _pool_for(self, req):
        """Under self.mu: the pool a CreateSessionRequest maps to (pool_policy.go)."""
        ns = self.cfg["namespace"]
        if req.get("image"):
            image = normalize_image(req["image"])
            profile = req.get("profile") or "default"
            key = "%s/%s/%s" % (ns, profile, image)
            if req.get("allowInternet") is False:
                key += "/noInternet"
            name = "%s-%s" % (slug(image, 40), hashlib.sha256(key.encode()).hexdigest()[:12])
            pool = self.pools.get(name)
            if pool is None:
                pool = self.pools[name] = Pool(name, image, profile, ns, True, 1)
            return pool
        cands = [p for p in self.pools.values() if p.profile == req["profile"]]
        if not cands:
            raise GatewayError('no pool found for profile "%s"' % req["profile"])
        return max(cands, key=lambda p: p.replicas - p.allocated)

    # ---- sessions ---------------------------------------------------------------------

    def create_session(self, req, owner, disconnected):
        """POST /v1/sessions: blocks until allocated. disconnected() says whether the client
        went away (the wait then ends, as the request context does)."""
        ns = req.get("namespace") or ""
        if ns and ns != self.cfg["namespace"]:
            raise GatewayError("namespace %s is not allowed" % ns, 403)
        if req.get("mode") and req["mode"] != "devbox":
            raise GatewayError('invalid session mode: "%s"' % req["mode"], 400)
        alloc_to = req.get("allocationTimeoutSeconds")
        if alloc_to is None:
            alloc_to = self.cfg["admission_timeout"]
        gen = self.generation
        with self.mu:
            pool = self._pool_for(req)
            pool.queued += 1
            if pool.state == "stopped" or pool.replicas < pool.allocated + pool.queued:
                pool.replicas = min(pool.allocated + pool.queued + 1, self.cfg["max_replicas"] or 1 << 30)
                pool.state = "running"
                pool.scale_events.append(("up", pool.replicas))
        t0 = time.monotonic()
        delay = self.cfg["alloc_delay"] + self.faults.alloc_delay()
        hang = self.faults.take("alloc-hang")
        allocated = False
        try:
            while True:
                waited = time.monotonic() - t0
                with self.mu:
                    cap = self.cfg["max_replicas"]
                    free = not cap or pool.allocated < cap
                    if not hang and waited >= delay and free:
                        pool.allocated += 1
                        allocated = True
                        break
                if alloc_to and waited >= alloc_to:
                    raise GatewayError("pool at maximum capacity: queued for %s" % go_duration(round(waited, 3)))
                if disconnected() or self.stopping.is_set() or gen != self.generation:
                    raise GatewayError("context canceled")
                time.sleep(0.02 if delay - waited > 0.02 or hang or not free else max(0.0, delay - waited))
        finally:
            with self.mu:
                pool.queued -= 1
                if not allocated:
                    self._maybe_stop_pool(pool)
        try:
            sid = "%s-%s" % (slug(pool.image or pool.profile, 46), secrets.token_hex(8))
            root = os.path.join(self.workdir, "pods", sid)
            os.makedirs(root)
            try:
                pod = FakePod(root)
            except OSError as e:
                pod_container.rmtree(root)
                raise GatewayError("failed to make the session's pod: %s" % e)
            if not self.bwrap:
                raise GatewayError("the fake gateway needs bwrap for its pods")
            try:
                container = self.starter.call(pod_container.Container.start, self.shared, pod, self.bwrap,
                                              self.ro_dirs, self.links, req.get("allowInternet") is not False)
            except (OSError, RuntimeError) as e:
                pod_container.rmtree(root)
                raise GatewayError("failed to start the session's pod: %s" % e)
        except BaseException:
            with self.mu:
                pool.allocated -= 1
                self._maybe_stop_pool(pool)
            raise
        s = Session(sid, owner, req, pool, pod, container)
        if not s.idle_timeout:
            s.idle_timeout = self.cfg["idle_timeout"]
        with self.mu:
            if gen != self.generation or self.stopping.is_set():
                stale = True
            else:
                stale = False
                self.sessions[sid] = s
        if stale:
            self._destroy(s, "restart")
            raise GatewayError("context canceled")
        return s

    def get_session(self, sid):
        with self.mu:
            return self.sessions.get(sid)

    def tombstone(self, sid):
        with self.mu:
            return self.tombstones.get(sid) if self.cfg["redis"] else None

    def delete_session(self, sid, reason="deleted"):
        with self.mu:
            s = self.sessions.pop(sid, None)
            if s is None:
                raise GatewayError("session %s not found" % sid)
            s.deleted = True
            s.deleted_at = time.time()
            s.deletion_reason = reason
            if self.cfg["redis"]:
                self.tombstones[sid] = s
        self._destroy(s, reason)

    def _destroy(self, s, reason):
        s.pod.deleting = True
        s.container.stop()
        pod_container.rmtree(s.pod.root)
        with self.mu:
            s.pool.allocated -= 1
            self._maybe_stop_pool(s.pool)
            self.mu.notify_all()

    def _maybe_stop_pool(self, pool):
        """stopManagedPoolIfUnused: an image-backed pool left with no session goes to 0."""
        if pool.managed and pool.allocated == 0 and pool.queued == 0 and pool.state != "stopped":
            pool.replicas = 0
            pool.state = "stopped"
            pool.scale_events.append(("stopped", 0))

    def list_sessions(self):
        with self.mu:
            return sorted(self.sessions.values(), key=lambda s: (s.created, s.id))

    def reap_idle(self):
        """The idle reaper's sweep (never while an execute or a transfer runs)."""
        now = time.time()
        with self.mu:
            idle = [s for s in self.sessions.values()
                    if s.busy == 0 and s.idle_timeout > 0 and now - s.last_active >= s.idle_timeout]
        for s in idle:
            try:
                self.delete_session(s.id, "idle_timeout")
            except GatewayError:
                pass

    def restart(self, keep_sessions=False, when_running=None, wait_s=60.0):
        """What a gateway restart does to its memory: every operation is forgotten (and
        the results of running ones are lost); with the in-memory store (the default) every
        session is forgotten too: its pod is deleted here so that nothing leaks.
        when_running (True, or a step name): first waits (up to wait_s) until a step (that
        step) runs, and restarts while it still does: a test needs no timing window.
        Returns False when no such step ran in time (nothing restarted)."""
        end = time.monotonic() + wait_s
        while True:
            with self.mu:
                if when_running is None or any(when_running is True or when_running in s.running
                                               for s in self.sessions.values() if s.running):
                    self.generation += 1
                    gone = [] if keep_sessions else list(self.sessions.values())
                    if not keep_sessions:
                        self.sessions.clear()
                        self.tombstones.clear()
                    for s in self.sessions.values():
                        s.operations.clear()
                    break
            if time.monotonic() >= end:
                return False
            time.sleep(0.005)
        for s in gone:
            s.deleted = True
            self._destroy(s, "restart")
        return True

    def stop_all(self):
        self.stopping.set()
        with self.mu:
            gone = list(self.sessions.values())
            self.sessions.clear()
        for s in gone:
            self._destroy(s, "shutdown")

    # ---- execute ----------------------------------------------------------------------

    def _touch(self, s, busy):
        with self.mu:
            s.busy += busy
            s.last_active = time.time()

    def run_steps(self, s, req, on_output=None, on_result=None, gen=None):
        """Runs every step (all of them, whatever their exit codes); returns ExecuteResponse."""
        t0 = time.monotonic()
        results = []
        self._touch(s, 1)
        try:
            for step in req["steps"]:
                if s.deleted:             # deleted under the request: the session is gone
                    raise GatewayError("session %s not found" % s.id)
                r = self._run_step(s, step, on_output)
                results.append(r)
                if on_result:
                    on_result(r)
        finally:
            self._touch(s, -1)
        resp = {"sessionID": s.id, "results": results, "totalDurationMs": int((time.monotonic() - t0) * 1000)}
        if req.get("operationID"):
            resp["operationID"] = req["operationID"]
        return resp

    def _alloc_index(self, s):
        with self.mu:
            i = s.next_index
            s.next_index += 1
            return i

    def _record(self, s, index, name, inp, output, started, duration_ms):
        out = dict(output)
        truncated = False
        for k in ("stdout", "stderr"):
            if k in out and len(out[k]) > PREVIEW:
                out[k] = out[k][:PREVIEW]
                truncated = True
        rec = {"index": index, "name": name, "input": inp, "output": out, "snapshot_id": str(index),
               "duration_ms": duration_ms, "timestamp": now_rfc3339(started)}
        if truncated:
            rec["outputTruncated"] = True
        with self.mu:
            s.history.append(rec)

    def _run_step(self, s, step, on_output):
        index = self._alloc_index(s)
        started = time.time()
        t0 = time.monotonic()
        argv = step.get("command") or []
        timeout = step.get("timeoutSeconds") or step.get("timeout") or 0
        env = dict(BASE_ENV)
        env["HOSTNAME"] = s.id
        env.update(step.get("env") or {})
        cwd = step.get("workDir") or "/"
        name = step.get("name", "")
        with self.mu:
            s.running.append(name)
        try:
            stdout, stderr, code = self._exec(s, argv, env, cwd, timeout, on_output)
        finally:
            with self.mu:
                s.running.remove(name)
        out = {"stdout": _json_str(stdout), "stderr": _json_str(stderr), "exit_code": code}
        dur = int((time.monotonic() - t0) * 1000)
        inp = step_request_json(step)
        self._record(s, index, step.get("name", ""), inp, out, started, dur)
        return {"index": index, "name": step.get("name", ""), "output": out, "snapshot_id": str(index),
                "duration_ms": dur, "timestamp": now_rfc3339(started), "input": inp}

    def _exec(self, s, argv, env, cwd, timeout, on_output):
        if not argv:
            return b"", b"executor error: [3] command is empty", 1
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            conn, _pid = s.container.exec(argv, env, cwd, out_w, err_w)
        except pod_container.StartError as e:
            os.close(out_r)
            os.close(err_r)
            return b"", _start_error_text(str(e), getattr(e, "errno", None)).encode(), 1
        except OSError as e:
            os.close(out_r)
            os.close(err_r)
            return b"", executor_error("transport error: %s" % e, 14).encode(), 1
        readers = [_Reader(out_r, "stdout", on_output), _Reader(err_r, "stderr", on_output)]
        for r in readers:
            r.start()
        code = 1
        try:
            code = pod_container.wait_exit(conn, timeout if timeout > 0 else None)
            if code is None:
                pod_container.kill(conn)          # the direct child only
                code = pod_container.wait_exit(conn, None)
        except (OSError, ValueError, KeyError) as e:
            code = None
            lost = executor_error("transport error: %s" % e, 14)
        finally:
            conn.close()
        for r in readers:
            r.exited.set()
        for r in readers:
            r.join()
        os.close(out_r)
        os.close(err_r)
        if code is None:
            return b"", lost.encode(), 1
        if code < 0:
            code = 1                  # status.code().unwrap_or(1): a signal (the timeout's SIGKILL) is exit 1
        return bytes(readers[0].data), bytes(readers[1].data), code

    # ---- operations -------------------------------------------------------------------

    def _purge_ops(self, s):
        keep = self.cfg["operation_retention"]
        now = time.time()
        for k, op in list(s.operations.items()):
            if op.finished is not None and now - op.finished >= keep:
                del s.operations[k]

    def get_or_start_operation(self, s, req):
        """getOrStartOperation: returns (operation, started_now)."""
        h = request_hash(req)
        op_id = req["operationID"]
        with self.mu:
            self._purge_ops(s)
            op = s.operations.get(op_id)
            if op is not None:
                if op.hash != h:
                    raise GatewayError("operation %s already exists with different request" % op_id)
                return op, False
            op = s.operations[op_id] = Operation(op_id, s.id, h)
            gen = self.generation
        if self.faults.take("stuck-op"):
            return op, True           # a pod that never becomes ready: running forever
        threading.Thread(target=self._run_operation, args=(s, req, op, gen), daemon=True).start()
        return op, True

    def _run_operation(self, s, req, op, gen):
        try:
            resp = self.run_steps(s, req)
            with self.mu:
                op.result = resp
                op.status = "done"
        except Exception as e:        # noqa: BLE001 (the gateway records any failure as the op's error)
            with self.mu:
                op.error = str(e)
                op.status = "error"
        with self.mu:
            op.finished = time.time()
            # Only this operation: one resubmitted under its ID after the restart stays.
            if gen != self.generation and s.operations.get(op.id) is op:
                del s.operations[op.id]
        op.done.set()

    def operation(self, s, op_id):
        with self.mu:
            self._purge_ops(s)
            return s.operations.get(op_id)

    # ---- files ------------------------------------------------------------------------

    def upload(self, s, path, data, sha):
        started = time.time()
        t0 = time.monotonic()
        self._touch(s, 1)
        try:
            reply = s.container.put_file(path, data, sha or None)
        except OSError as e:
            reply = {"error": "transport error: %s" % e, "errno": 14}
        finally:
            self._touch(s, -1)
        if "error" in reply:
            raise GatewayError(executor_error(reply), 500)
        resp = {"path": path, "bytesWritten": reply["bytesWritten"], "sha256": reply["sha256"]}
        index = self._alloc_index(s)          # an upload takes a step index, as in the history
        self._record(s, index, "upload_file", {"path": path, "bytes": len(data)},
                     {"stdout": "", "stderr": "", "exit_code": 0}, started, int((time.monotonic() - t0) * 1000))
        return resp

    def download(self, s, path, start, sink):
        self._touch(s, 1)
        try:
            reply = s.container.get_file(path, start, sink)
        finally:
            self._touch(s, -1)
        if "error" in reply:
            raise GatewayError(executor_error(reply), 500)
        return reply


class _Starter:
    """Long-lived threads that start the pods' containers: bwrap --die-with-parent ties a
    container to the THREAD that forked it (PR_SET_PDEATHSIG), so a request's thread,
    which ends with its request, must not be the one."""

    def __init__(self, n):
        import queue
        self.q = queue.Queue()
        for _ in range(n):
            threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while True:
            fn, args, box, done = self.q.get()
            try:
                box.append((True, fn(*args)))
            except BaseException as e:      # noqa: BLE001 (handed back to the caller)
                box.append((False, e))
            done.set()

    def call(self, fn, *args):
        box, done = [], threading.Event()
        self.q.put((fn, args, box, done))
        done.wait()
        ok, val = box[0]
        if not ok:
            raise val
        return val


def _which(name):
    for d in os.environ.get("PATH", "/usr/bin:/bin").split(":") + ["/usr/bin"]:
        p = os.path.join(d, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None
