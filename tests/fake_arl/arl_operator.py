"""The simulated ARL operator: WarmPool, Sandbox, Task (and TTL) controllers.

(Named arl_operator, not operator: a module called operator would shadow the standard
library's, which collections imports.)

Semantics are those of the afa0e55 operator (see docs/kubernetes.md), with the
one 9ed7431 choice the project wants: a deleted Sandbox's pod is deleted, and the pool
(which keeps `replicas` IDLE pods, afa0e55's `needed := replicas - totalIdle`) makes a
fresh one, so every Sandbox starts from a clean workspace.

Structure mirrors controller-runtime: store events enqueue keys on work queues; a key is
never reconciled by two workers at once, and an event arriving during its reconcile
re-queues it afterwards. Pools and Sandboxes share one single-worker queue (their
reconciles are quick). Tasks run their steps synchronously inside the reconcile, as the
real controller does, on `task_workers` workers. (controller-runtime's default, which
the real SetupWithManager does not change, is ONE worker: `--task-workers 1` reproduces
that serialisation across the whole cluster.)

The operator writes through the store directly (never through HTTP, so faults do not
touch it), with resourceVersion preconditions where the real one would send its cached
object (Update), and with the Go structs' JSON shapes (e.g. a Task status always has
"duration", "0s" until it completes, because omitempty does not apply to structs).

Pacing: each Sandbox phase step waits `sandbox_delay`, each Task waits `task_delay`
before it starts, a new pod becomes Running after `pod_delay`; with no idle pod a
Sandbox retries every `retry_interval` (real: 5 s); a Task whose Sandbox is not Ready
rechecks every `pending_interval` (real: 2 s). `slow-operator=N` multiplies all of them.
"""

import copy
import heapq
import itertools
import os
import random
import re
import sys
import threading
import time
import uuid

import pod_container
from executor import Pod, Sidecar, go_join, make_pod_dirs
from gotime import duration_string, parse_duration
from store import ApiError, now_rfc3339, parse_rfc3339

FINALIZER = "arl.infra.io/sandbox-finalizer"
WORKSPACE_DIR = "/workspace"
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"   # apimachinery's generateName alphabet


class WorkQueue:
    """A delaying, de-duplicating work queue with the client-go processing/dirty rule."""

    def __init__(self):
        self.cond = threading.Condition()
        self.heap = []
        self.queued = {}        # key -> due time of its live heap entry
        self.processing = set()
        self.dirty = {}         # key -> due time, for keys added while being processed
        self.seq = itertools.count()
        self.closed = False

    def add(self, key, delay=0.0):
        due = time.monotonic() + max(0.0, delay)
        with self.cond:
            if key in self.processing:
                self.dirty[key] = min(self.dirty.get(key, due), due)
                return
            if key in self.queued and self.queued[key] <= due:
                return
            self.queued[key] = due
            heapq.heappush(self.heap, (due, next(self.seq), key))
            self.cond.notify()

    def get(self):
        with self.cond:
            while not self.closed:
                while self.heap and self.queued.get(self.heap[0][2]) != self.heap[0][0]:
                    heapq.heappop(self.heap)      # superseded entry
                if self.heap:
                    due, _, key = self.heap[0]
                    wait = due - time.monotonic()
                    if wait <= 0:
                        heapq.heappop(self.heap)
                        del self.queued[key]
                        self.processing.add(key)
                        return key
                    self.cond.wait(min(wait, 1.0))
                else:
                    self.cond.wait(1.0)
            return None

    def done(self, key):
        with self.cond:
            self.processing.discard(key)
            due = self.dirty.pop(key, None)
        if due is not None:
            self.add(key, due - time.monotonic())

    def close(self):
        with self.cond:
            self.closed = True
            self.cond.notify_all()


class Operator:
    def __init__(self, store, crds, faults, workdir, *, pod_delay=0.2, sandbox_delay=0.05,
                 task_delay=0.0, retry_interval=0.5, pending_interval=0.5,
                 idle_timeout_default=3600, grpc_timeout=30, task_workers=4,
                 use_bwrap=True, pool_seeds=None, seed=1, verbose=False, pod_containers=True):
        self.store = store
        self.crds = crds
        self.faults = faults
        self.workdir = workdir
        self.pod_delay = pod_delay
        self.sandbox_delay = sandbox_delay
        self.task_delay = task_delay
        self.retry_interval = retry_interval
        self.pending_interval = pending_interval
        self.idle_timeout_default = idle_timeout_default
        self.grpc_timeout = grpc_timeout
        self.task_workers = max(1, task_workers)
        self.pool_seeds = pool_seeds or {}
        self.verbose = verbose
        self.rng = random.Random(seed)
        self.mu = threading.RLock()               # guards pods and pacing state
        self.pods = {}                            # (ns, name) -> Pod
        self.last_step = {}                       # (plural, ns, name) -> monotonic time
        self.bad_timeout_logged = set()
        self.failures = {}                        # key -> consecutive failed reconciles
        self.instance = "%d-%s" % (os.getpid(), uuid.uuid4().hex[:8])
        self.sidecar = Sidecar(use_bwrap=use_bwrap, instance=self.instance, log=self.log,
                               pod_containers=pod_containers)
        self.ctl_queue = WorkQueue()              # warmpools, sandboxes, pod timers
        self.task_queue = WorkQueue()
        self.threads = []
        store.listeners.append(self._on_event)

    # ---- plumbing ---------------------------------------------------------------------

    def log(self, msg, *args):
        if self.verbose:
            sys.stderr.write("fake-arl operator: " + (msg % args if args else msg) + "\n")

    def slow(self, seconds):
        return seconds * self.faults.slow_factor()

    def start(self):
        self.threads.append(threading.Thread(target=self._worker, args=(self.ctl_queue, self._reconcile_ctl),
                                             name="op-ctl", daemon=True))
        for i in range(self.task_workers):
            self.threads.append(threading.Thread(target=self._worker, args=(self.task_queue, self.reconcile_task),
                                                 name="op-task-%d" % i, daemon=True))
        for t in self.threads:
            t.start()
        # objects that exist already (e.g. --pool) get reconciled too
        for plural in ("warmpools", "sandboxes", "tasks"):
            for o in self.store.list(plural)[0]:
                self._enqueue(plural, o["metadata"].get("namespace", ""), o["metadata"]["name"])

    def stop(self):
        self.ctl_queue.close()
        self.task_queue.close()
        self.sidecar.kill_pod_processes(None)  # running steps end, and their workers with them
        # A reconcile under way may still make a pod: wait for it, so cleanup() sees the pod.
        for t in self.threads:
            if t is not threading.current_thread():
                t.join(30)
        self.sidecar.kill_pod_processes(None)

    def cleanup(self):
        """Removes every pod directory (server shutdown)."""
        with self.mu:
            pods = list(self.pods.values())
            self.pods.clear()
        for p in pods:
            self.sidecar.stop_pod(p)
        self.sidecar.kill_pod_processes(None)
        for p in pods:
            pod_container.rmtree(p.root)
        self.sidecar.remove_shared()

    def _worker(self, queue, fn):
        while True:
            key = queue.get()
            if key is None:
                return
            try:
                fn(key)
                with self.mu:
                    self.failures.pop(key, None)
            except Exception as e:
                # A failed reconcile is retried with exponential backoff (controller-runtime:
                # 5 ms doubling up to 1000 s; capped lower here to keep tests moving).
                with self.mu:
                    n = self.failures[key] = self.failures.get(key, 0) + 1
                delay = min(0.005 * 2 ** n, 30.0)
                if isinstance(e, ApiError):
                    self.log("reconcile %s: %s %s; retry in %.3fs", key, e.code, e.message, delay)
                else:       # a bug in the fake: keep the operator alive, report loudly
                    sys.stderr.write("fake-arl operator: reconcile %s crashed: %r\n" % (key, e))
                    import traceback
                    traceback.print_exc()
                queue.add(key, delay)
            finally:
                queue.done(key)

    def _enqueue(self, plural, ns, name, delay=0.0):
        if plural == "tasks":
            self.task_queue.add((plural, ns, name), delay)
        else:
            self.ctl_queue.add((plural, ns, name), delay)

    def _on_event(self, ev):
        """Store listener (runs under the store lock: only enqueue here)."""
        md = ev.obj["metadata"]
        ns, name = md.get("namespace", ""), md["name"]
        if ev.plural in ("warmpools", "sandboxes", "tasks"):
            self._enqueue(ev.plural, ns, name)
        if ev.plural == "sandboxes" and ev.type == "DELETED":
            spec = ev.obj.get("spec") or {}
            self._enqueue("warmpools", ns, spec.get("poolRef", ""))

    def _reconcile_ctl(self, key):
        plural, ns, name = key
        if plural == "warmpools":
            self.reconcile_pool(ns, name)
        elif plural == "sandboxes":
            self.reconcile_sandbox(ns, name)
        elif plural == "pod":
            self._pod_started(ns, name)

    def _paced(self, key, delay):
        """True (and requeued) if the previous step of `key` was less than delay ago."""
        now = time.monotonic()
        with self.mu:
            last = self.last_step.setdefault(key, now)
        wait = last + self.slow(delay) - now
        if wait > 0:
            self._enqueue(key[0], key[1], key[2], wait)
            return True
        return False

    def _stepped(self, key):
        with self.mu:
            self.last_step[key] = time.monotonic()

    def _write(self, plural, ns, name, fn, expect_rv=None, bump=False):
        """Update as a controller does: read, mutate a copy, write with a precondition."""
        crd = self.crds[plural]
        with self.store.lock:
            cur = self.store.get(plural, ns, name)
            if cur is None:
                raise ApiError(404, "NotFound", '%s.%s "%s" not found' % (plural, crd.group, name))
            if expect_rv is not None and cur["metadata"]["resourceVersion"] != expect_rv:
                raise ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s.%s "%s": the object '
                               'has been modified; please apply your changes to the latest version and '
                               'try again' % (plural, crd.group, name))
            new = copy.deepcopy(cur)
            fn(new)
            return self.store.put(plural, new, cur, bump_generation=bump)

    def _delete(self, plural, ns, name):
        """DELETE as the API server does it: finalizers first, removal at the end."""
        with self.store.lock:
            cur = self.store.get(plural, ns, name)
            if cur is None:
                return
            if cur["metadata"].get("finalizers"):
                if cur["metadata"].get("deletionTimestamp"):
                    return
                new = copy.deepcopy(cur)
                new["metadata"]["deletionTimestamp"] = now_rfc3339()
                new["metadata"]["deletionGracePeriodSeconds"] = 0
                self.store.put(plural, new, cur, bump_generation=True)
            else:
                self.store.remove(plural, ns, name)

    # ---- pods -------------------------------------------------------------------------

    def pod_list(self, ns=None):
        with self.mu:
            return [p for p in self.pods.values() if ns is None or p.namespace == ns]

    def get_pod(self, ns, name):
        with self.mu:
            return self.pods.get((ns, name))

    def _create_pod(self, pool):
        md, spec = pool["metadata"], pool.get("spec") or {}
        ns, pname = md.get("namespace", ""), md["name"]
        with self.mu:
            while True:
                name = "%s-%s" % (pname, "".join(self.rng.choice(_NAME_CHARS) for _ in range(5)))
                if (ns, name) not in self.pods:
                    break
        # Volumes the sidecar sees: the workspace always (the operator injects it), plus
        # whatever the template's own `sidecar` container mounts.
        mounts = {WORKSPACE_DIR: "workspace"}
        for c in ((spec.get("template") or {}).get("spec") or {}).get("containers") or []:
            if c.get("name") == "sidecar":
                for vm in c.get("volumeMounts") or []:
                    if vm.get("mountPath") and vm.get("name") and vm["mountPath"] != WORKSPACE_DIR:
                        mounts[vm["mountPath"]] = vm["name"]
        root = os.path.join(self.workdir, "%s_%s" % (ns, name))
        seed = self.pool_seeds.get("%s/%s" % (ns, pname)) or self.pool_seeds.get(pname)
        host_mounts = make_pod_dirs(root, mounts, seed)
        pod = Pod(name, ns, pname, str(uuid.uuid4()), root, host_mounts)
        with self.mu:
            self.pods[(ns, name)] = pod
        self.log("pod %s/%s created (%s)", ns, name, root)
        self.ctl_queue.add(("pod", ns, name), self.slow(self.pod_delay))
        return pod

    def _pod_started(self, ns, name):
        with self.mu:
            pod = self.pods.get((ns, name))
            if pod is None or pod.deleting:
                return
            if self.faults.no_idle(ns, pod.pool):
                # injected: stuck (e.g. image pull); look again later in case the fault goes
                self.ctl_queue.add(("pod", ns, name), 0.5)
                return
        # the container is the pod's: started before it counts as Running
        self.sidecar.start_pod(pod)
        with self.mu:
            if pod.deleting:
                self.sidecar.stop_pod(pod)
                return
            pod.phase = "Running"
        self._enqueue("warmpools", ns, pod.pool)
        # The real sandbox controller only notices on its next retry; waking the pending
        # Sandboxes of this pool just makes tests faster.
        for sb in self.store.list("sandboxes", ns)[0]:
            if (sb.get("status") or {}).get("phase") == "Pending" and \
                    (sb.get("spec") or {}).get("poolRef") == pod.pool:
                self._enqueue("sandboxes", ns, sb["metadata"]["name"])

    def _delete_pod(self, pod):
        with self.mu:
            pod.deleting = True
            self.pods.pop((pod.namespace, pod.name), None)
        self.sidecar.stop_pod(pod)
        self.sidecar.kill_pod_processes(pod.uid)
        pod_container.rmtree(pod.root)
        self.log("pod %s/%s deleted", pod.namespace, pod.name)

    # ---- WarmPool ---------------------------------------------------------------------

    def reconcile_pool(self, ns, name):
        pool = self.store.get("warmpools", ns, name)
        if pool is None:
            # ownerReference garbage collection: every pod of the pool goes, allocated ones too
            for p in [p for p in self.pod_list(ns) if p.pool == name]:
                self._delete_pod(p)
            return
        if pool["metadata"].get("deletionTimestamp"):
            return
        replicas = int((pool.get("spec") or {}).get("replicas") or 0)
        pods = [p for p in self.pod_list(ns) if p.pool == name and not p.deleting]
        idle = [p for p in pods if p.status_label == "idle"]
        allocated = [p for p in pods if p.status_label == "allocated"]
        needed = replicas - len(idle)              # afa0e55: replicas = idle pods kept warm
        for _ in range(max(0, needed)):
            self._create_pod(pool)
        if needed < 0:
            # surplus idle pods: not-yet-running ones first
            for p in sorted(idle, key=lambda p: p.phase == "Running")[:(-needed)]:
                self._delete_pod(p)
        ready = len([p for p in self.pod_list(ns) if p.pool == name and p.status_label == "idle"
                     and p.phase == "Running" and not p.deleting])
        if self.faults.no_idle(ns, name):
            ready = 0
        status = {"readyReplicas": ready, "allocatedReplicas": len(allocated)}
        old = pool.get("status") or {}
        if old.get("readyReplicas") != ready or old.get("allocatedReplicas") != len(allocated) or "status" not in pool:
            def upd(o):
                st = o.get("status") or {}
                st.update(status)
                o["status"] = st
            self._write("warmpools", ns, name, upd, expect_rv=pool["metadata"]["resourceVersion"])

    # ---- Sandbox ----------------------------------------------------------------------

    def reconcile_sandbox(self, ns, name):
        key = ("sandboxes", ns, name)
        sb = self.store.get("sandboxes", ns, name)
        if sb is None:
            with self.mu:
                self.last_step.pop(key, None)
            return
        md = sb["metadata"]
        rv = md["resourceVersion"]
        spec, status = sb.get("spec") or {}, sb.get("status") or {}
        if md.get("deletionTimestamp"):
            if FINALIZER in (md.get("finalizers") or []):
                # 9ed7431: the pod is deleted (not returned to the pool uncleaned)
                pod = self.get_pod(ns, status.get("podName", "")) if status.get("podName") else None
                if pod is not None and pod.sandbox == name:
                    self._delete_pod(pod)
                self._enqueue("warmpools", ns, spec.get("poolRef", ""))

                def drop(o):
                    o["metadata"]["finalizers"] = [f for f in o["metadata"]["finalizers"] if f != FINALIZER]
                self._write("sandboxes", ns, name, drop, expect_rv=rv)
            return
        if FINALIZER not in (md.get("finalizers") or []):
            if self._paced(key, self.sandbox_delay):
                return

            def add(o):
                o["metadata"]["finalizers"] = (o["metadata"].get("finalizers") or []) + [FINALIZER]
            self._write("sandboxes", ns, name, add, expect_rv=rv)
            self._stepped(key)
            return
        phase = status.get("phase", "")
        if phase == "":
            if self._paced(key, self.sandbox_delay):
                return
            self._set_sandbox_status(sb, {"phase": "Pending"})
            self._stepped(key)
        elif phase == "Pending":
            if self._paced(key, self.sandbox_delay):
                return
            if not (len(name) <= 63 and _LABEL_VALUE.match(name)):
                # the pod label update (arl.infra.io/sandbox=<name>) is rejected: the
                # sandbox stays Pending forever, retried with backoff
                self.log("sandbox %s/%s: name is not a valid label value; stays Pending", ns, name)
                self._enqueue("sandboxes", ns, name, self.slow(self.retry_interval) * 4)
                return
            pool_name = spec.get("poolRef", "")
            starved = self.faults.no_idle(ns, pool_name)
            with self.mu:
                cands = [p for p in self.pods.values() if p.namespace == ns and p.pool == pool_name
                         and p.status_label == "idle" and p.phase == "Running" and not p.deleting
                         and not starved]
                pod = min(cands, key=lambda p: (p.created, p.name)) if cands else None
                if pod is not None:
                    pod.status_label, pod.sandbox = "allocated", name
            if pod is None:
                self.log("sandbox %s/%s: no idle pods in pool %r", ns, name, pool_name)
                self._enqueue("sandboxes", ns, name, self.slow(self.retry_interval))
                return
            if self.faults.sandbox_fail():
                # injected: as if the pod vanished right after binding (Bound -> pod not
                # found -> Failed, no condition message). The pod goes.
                self._delete_pod(pod)
                self._enqueue("warmpools", ns, pool_name)
                self._set_sandbox_status(sb, {"phase": "Failed"})
                self._stepped(key)
                return
            try:
                self._set_sandbox_status(sb, {"phase": "Bound", "podName": pod.name, "podIP": "127.0.0.1",
                                              "workDir": WORKSPACE_DIR})
            except ApiError:
                with self.mu:        # undo the allocation; the retry picks a pod again
                    pod.status_label, pod.sandbox = "idle", None
                raise
            self._enqueue("warmpools", ns, pool_name)
            self._stepped(key)
        elif phase == "Bound":
            if self._paced(key, self.sandbox_delay):
                return
            pod = self.get_pod(ns, status.get("podName", ""))
            if pod is None:
                self._set_sandbox_status(sb, {"phase": "Failed"})
            elif pod.phase == "Running":
                self._set_sandbox_status(sb, {"phase": "Ready", "podIP": "127.0.0.1"})
            else:
                self._enqueue("sandboxes", ns, name, self.slow(2.0))
                return
            self._stepped(key)
        elif phase == "Ready":
            self._handle_ready(sb)

    def _set_sandbox_status(self, sb, changes):
        md = sb["metadata"]

        def upd(o):
            st = dict(o.get("status") or {})
            st.update(changes)
            o["status"] = st
        self._write("sandboxes", md["namespace"], md["name"], upd, expect_rv=md["resourceVersion"])

    def _handle_ready(self, sb):
        md, spec, status = sb["metadata"], sb.get("spec") or {}, sb.get("status") or {}
        ns, name = md["namespace"], md["name"]
        if not spec.get("keepAlive"):
            for c in status.get("conditions") or []:
                if c.get("type") == "ReadyForCleanup" and c.get("status") == "True":
                    self.log("sandbox %s/%s: ReadyForCleanup, deleting", ns, name)
                    self._delete("sandboxes", ns, name)
                    return
        idle = spec["idleTimeoutSeconds"] if "idleTimeoutSeconds" in spec else self.idle_timeout_default
        wake = []
        if idle and idle > 0 and status.get("lastTaskTime"):
            left = parse_rfc3339(status["lastTaskTime"]) + idle - time.time()
            if left <= 0:
                self.log("sandbox %s/%s: idle for %ss, deleting", ns, name, idle)
                self._delete("sandboxes", ns, name)
                return
            wake.append(left)
        # spec.maxLifetimeSeconds (9ed7431 field): honoured only when set explicitly
        life = spec.get("maxLifetimeSeconds")
        if life and life > 0:
            left = parse_rfc3339(md["creationTimestamp"]) + life - time.time()
            if left <= 0:
                self._delete("sandboxes", ns, name)
                return
            wake.append(left)
        if wake:
            self._enqueue("sandboxes", ns, name, min(wake) + 0.01)

    # ---- Task (+ TTL) -----------------------------------------------------------------

    def _write_task_status(self, task, st, expect_rv):
        md = task["metadata"]

        def upd(o):
            o["status"] = task_status_json(st)
        return self._write("tasks", md["namespace"], md["name"], upd, expect_rv=expect_rv)

    def reconcile_task(self, key):
        _, ns, name = key
        task = self.store.get("tasks", ns, name)
        if task is None:
            with self.mu:
                self.last_step.pop(key, None)
            return
        md, spec = task["metadata"], task.get("spec") or {}
        st = dict(task.get("status") or {})
        state = st.get("state", "")
        if state in ("Succeeded", "Failed"):
            self._ttl(task)
            return
        # The operator decodes the whole object into its Go type; a timeout that is not a
        # Go duration makes that fail, so the Task is never reconciled (docs/kubernetes.md).
        timeout_ns = 0
        if spec.get("timeout") is not None:
            try:
                timeout_ns = parse_duration(spec["timeout"])
            except ValueError as e:
                if key not in self.bad_timeout_logged:
                    self.bad_timeout_logged.add(key)
                    sys.stderr.write("fake-arl operator: task %s/%s cannot be decoded: %s\n" % (ns, name, e))
                return
        sb_name = spec.get("sandboxRef", "")
        sb = self.store.get("sandboxes", ns, sb_name)
        if sb is None:
            st["state"] = "Failed"
            st["stderr"] = 'sandbox %s not found: sandboxes.arl.infra.io "%s" not found' % (sb_name, sb_name)
            self._write_task_status(task, st, md["resourceVersion"])
            return
        if (sb.get("status") or {}).get("phase") != "Ready":
            st["state"] = "Pending"
            self._write_task_status(task, st, md["resourceVersion"])
            self._enqueue("tasks", ns, name, self.slow(self.pending_interval))
            return
        if self._paced(key, self.task_delay):
            return
        rv = md["resourceVersion"]
        start_wall = time.time()
        if state in ("", "Pending"):
            st["state"] = "Running"
            st["startTime"] = now_rfc3339(start_wall)
            rv = self._write_task_status(task, st, rv)["metadata"]["resourceVersion"]
        # What the controller holds after Status().Update: startTime truncated to the
        # second, so duration = completion - truncated start (can exceed the real run).
        start = parse_rfc3339(st["startTime"]) if st.get("startTime") else None

        stdout, stderr, exit_code = self._run_steps(sb, spec, timeout_ns)

        now = time.time()
        final = dict(st)
        final.update({"completionTime": now_rfc3339(now), "exitCode": exit_code, "stdout": stdout,
                      "stderr": stderr, "state": "Succeeded" if exit_code == 0 else "Failed"})
        if start is not None:
            final["duration"] = duration_string(int(round((now - start) * 1e9)))
        try:
            self._write_task_status(task, final, rv)
        except ApiError as e:
            if e.code == 404:
                return          # deleted while it ran
            raise               # conflict: requeued, and the steps run again (as for real)
        self._after_task(sb, now)

    def _run_steps(self, sb, spec, timeout_ns):
        sst = sb.get("status") or {}
        workdir_default = sst.get("workDir", WORKSPACE_DIR)
        pod = self.get_pod(sb["metadata"]["namespace"], sst.get("podName", ""))
        if pod is None:
            # a Ready sandbox whose pod is gone (pool deleted): transport errors
            pod = Pod(sst.get("podName", "gone"), "", "", "gone", "/nonexistent/fake-arl-pod", {WORKSPACE_DIR: "/nonexistent"})
        timeout_s = 30
        if timeout_ns > 0:
            timeout_s = int(timeout_ns // 10**9)          # int32(Duration.Seconds()): truncated
        stdout, stderr, code = [], [], 0
        for step in spec.get("steps") or []:
            typ = step.get("type")
            if typ == "FilePatch":
                path = step.get("path", "")
                if not path:
                    stderr.append("FilePatch step requires 'path' field\n")
                    code = 1
                    break
                if path.startswith(workdir_default + "/"):
                    full = go_join(workdir_default, path[len(workdir_default) + 1:])
                elif path.startswith("/"):
                    full = go_join(WORKSPACE_DIR, path)   # sidecar: Join("/workspace", "/testbed/x")
                else:
                    full = go_join(workdir_default, path)
                err = self.sidecar.write_file(pod, full, step.get("content", ""))
                if err:
                    stderr.append("File update failed: %s\n" % err)
                    code = 1
                    break
                stdout.append("File created: %s\n" % path)
            elif typ == "Command":
                wd = step.get("workDir") or workdir_default
                o, e, code = self.sidecar.execute(pod, step.get("command") or [], step.get("env") or {}, wd,
                                                  timeout_s, self.grpc_timeout)
                stdout.append(o)
                stderr.append(e)
                if code != 0:
                    break
            # any other type: nothing happens and the step counts as a success
        return "".join(stdout), "".join(stderr), code

    def _after_task(self, sb, now):
        md = sb["metadata"]
        ns, name = md["namespace"], md["name"]
        rv = md["resourceVersion"]

        def last(o):
            st = dict(o.get("status") or {})
            st["lastTaskTime"] = now_rfc3339(now)
            o["status"] = st
        try:   # with the Sandbox as read before the steps: a conflict is only logged
            rv = self._write("sandboxes", ns, name, last, expect_rv=rv)["metadata"]["resourceVersion"]
        except ApiError as e:
            self.log("sandbox %s/%s: lastTaskTime not updated: %s", ns, name, e.message)
        if (sb.get("spec") or {}).get("keepAlive"):
            return
        for t in self.store.list("tasks", ns)[0]:
            if (t.get("spec") or {}).get("sandboxRef") == name and \
                    (t.get("status") or {}).get("state") not in ("Succeeded", "Failed"):
                return

        def cond(o):
            st = dict(o.get("status") or {})
            st["conditions"] = list(st.get("conditions") or []) + [{
                "type": "ReadyForCleanup", "status": "True", "lastTransitionTime": now_rfc3339(),
                "reason": "AllTasksComplete", "message": "All tasks completed, sandbox can be deleted"}]
            o["status"] = st
        try:
            self._write("sandboxes", ns, name, cond, expect_rv=rv)
        except ApiError as e:
            self.log("sandbox %s/%s: ReadyForCleanup not set: %s", ns, name, e.message)

    def _ttl(self, task):
        spec, st = task.get("spec") or {}, task.get("status") or {}
        ttl = spec.get("ttlSecondsAfterFinished")
        if ttl is None or not st.get("completionTime"):
            return
        md = task["metadata"]
        left = parse_rfc3339(st["completionTime"]) + ttl - time.time()
        if left > 0:
            self._enqueue("tasks", md["namespace"], md["name"], left + 0.01)
        else:
            self._delete("tasks", md["namespace"], md["name"])


def task_status_json(st):
    """TaskStatus as Go's encoding/json writes it (field order, omitempty rules)."""
    out = {}
    if st.get("state"):
        out["state"] = st["state"]
    if st.get("exitCode"):
        out["exitCode"] = st["exitCode"]
    if st.get("stdout"):
        out["stdout"] = st["stdout"]
    if st.get("stderr"):
        out["stderr"] = st["stderr"]
    out["duration"] = st.get("duration") or "0s"     # a struct: omitempty never omits it
    for k in ("startTime", "completionTime"):
        if st.get(k):
            out[k] = st[k]
    if st.get("conditions"):
        out["conditions"] = st["conditions"]
    return out
