"""The sidecar: runs a Task's steps inside a fake pod.

A fake pod is a directory on the host (Pod.root) holding one directory per volume;
`workspace` is bound at /workspace, other volumes the pool template mounts into its
`sidecar` container (e.g. the swebench sample's `testbed` at /testbed) at their
mountPath. With bwrap, each pod is one persistent container (pod_container.py) that
every Command step is exec'd into. Otherwise (--no-pod-container, or a host where it
cannot start) each step runs under a bubblewrap of its own with these binds, read-only
/usr and /etc, a private /tmp, /proc and /dev; without a usable bwrap (or with
--no-bwrap) commands run directly on the host with cwd mapped into the pod directory,
and absolute /workspace paths in arguments then do NOT work.

Behaviour copied from the afa0e55 sidecar (pkg/sidecar/service.go) and operator gRPC
client:
- exec without a shell; the program is looked up in the sidecar's own PATH; a start
  failure gives exit 1 and stderr "failed to start command: <Go error>" (no newline);
- environment = the sidecar's (here: the server's) environment plus the step's env;
- output is read line by line (bufio.Scanner): every line, including an unterminated
  last one, ends with "\\n"; a trailing "\\r" is dropped; a line of 64 KiB or more stops
  the capture of that stream (and it is no longer drained);
- the per-command timer (timeoutSeconds) kills the direct process only (in a pod's
  container, the program itself; per-command bwrap: bwrap, whose --die-with-parent
  takes the command with it); its children survive in the pod, as in a real container,
  until the pod is deleted. A killed command reports exit -1, with the output so far;
- cmd.Wait closes the pipes once the direct process has exited, so background
  processes that inherited stdout do not hold the step open (here: reading stops
  0.1 s after the exit once the pipe is quiet);
- the operator's gRPC deadline (HTTP_CLIENT_TIMEOUT, --grpc-timeout, 30 s) cuts a
  longer command: exit 1, stderr "Failed to execute command: ... DeadlineExceeded ...",
  and that step's output is lost.
Known difference (per-command bwrap only): a command that dies from a signal it did not
get from the timer reports 128+N (bwrap's exit status) where a real pod reports -1.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pipe_reader
import pod_container

MAX_TOKEN = 64 * 1024   # bufio.MaxScanTokenSize
UNAVAILABLE_MSG = ("Failed to execute command: rpc error: code = Unavailable desc = connection "
                   "error: desc = \"transport: Error while dialing: dial tcp 127.0.0.1:9090: "
                   "connect: connection refused\"\n")
DEADLINE_MSG = ("Failed to execute command: gRPC stream receive failed: rpc error: "
                "code = DeadlineExceeded desc = context deadline exceeded\n")


def go_join(*parts):
    """Go's filepath.Join: joins with '/', then Clean (so Join("/workspace", "/x") is
    "/workspace/x", unlike os.path.join)."""
    joined = "/".join(p for p in parts if p)
    if not joined:
        return ""
    out = os.path.normpath(joined)
    if out.startswith("//"):
        out = "/" + out.lstrip("/")
    return out


class Pod:
    """A fake pod: labels and phase as the controllers see them, plus its directories."""

    def __init__(self, name, namespace, pool, uid, root, mounts):
        self.name = name
        self.namespace = namespace
        self.pool = pool
        self.uid = uid
        self.root = root               # host directory holding the volumes
        self.mounts = mounts           # {mountPath in the pod: host directory}
        self.status_label = "idle"     # arl.infra.io/status
        self.sandbox = None            # arl.infra.io/sandbox
        self.phase = "Pending"
        self.deleting = False
        self.created = time.time()
        self.container = None          # pod_container.Container once Running (with bwrap)

    @property
    def workspace(self):
        return self.mounts["/workspace"]

    def labels(self):
        lb = {"arl.infra.io/pool": self.pool, "arl.infra.io/status": self.status_label}
        if self.sandbox:
            lb["arl.infra.io/sandbox"] = self.sandbox
        return lb


class Sidecar:
    def __init__(self, use_bwrap=True, instance="fake-arl", log=None, pod_containers=True):
        self.instance = instance       # tags every process (FAKE_ARL_POD=<instance>/<pod uid>)
        self.log = log or (lambda *a: None)
        self.bwrap = shutil.which("bwrap") if use_bwrap else None
        self.shared = None             # pod_container.Shared, made by the first container
        self.shared_mu = threading.Lock()
        self.containers_broken = not pod_containers   # then each step gets a bwrap of its own
        if self.bwrap and not self._bwrap_works():
            self.log("bwrap is installed but cannot create a sandbox here; running steps directly")
            self.bwrap = None
        # The host directories bound read-only into the view, and / symlinks (merged /usr).
        self.ro_dirs, self.links = pod_container.host_view()

    # ---- the pod's container ----------------------------------------------------------

    def start_pod(self, pod):
        """Starts pod's persistent container (with bwrap). When that cannot work here,
        says so once and leaves the pod to the per-command bwrap of earlier versions."""
        if not self.bwrap or self.containers_broken or pod.container is not None:
            return
        with self.shared_mu:
            if self.shared is None:
                # named like the server's temp dir, so a next server removes it after a SIGKILL
                self.shared = pod_container.Shared(tempfile.mkdtemp(prefix="fake-arl.%d." % os.getpid()))
        try:
            pod.container = pod_container.Container.start(self.shared, pod, self.bwrap, self.ro_dirs, self.links)
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            if pod.deleting:
                return        # deleted while it started
            self.containers_broken = True
            sys.stderr.write("fake-arl: %s; every step now runs in its own bwrap\n" % e)

    def stop_pod(self, pod):
        c, pod.container = pod.container, None
        if c is not None:
            c.stop()

    def remove_shared(self):
        if self.shared is not None:
            pod_container.rmtree(self.shared.base)

    def _bwrap_works(self):
        try:
            return subprocess.run([self.bwrap, "--ro-bind", "/", "/", "true"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=10).returncode == 0
        except Exception:
            return False

    # ---- path views -------------------------------------------------------------------

    def to_host(self, pod, path):
        """Maps a path as the command sees it to the host path, or None if it does not
        exist in the pod's view (e.g. /root under bwrap)."""
        path = go_join(path)
        best = None
        for mp, host in pod.mounts.items():
            if path == mp or path.startswith(mp.rstrip("/") + "/"):
                if best is None or len(mp) > len(best[0]):
                    best = (mp, host)
        if best:
            rest = path[len(best[0]):].lstrip("/")
            return os.path.join(best[1], rest) if rest else best[1]
        if not self.bwrap:
            return path
        for link, target in self.links.items():
            if path == link or path.startswith(link + "/"):
                return self.to_host(pod, go_join("/", target, path[len(link):]))
        for d in self.ro_dirs + ["/proc", "/dev"]:
            if path == d or path.startswith(d + "/"):
                return path
        if path == "/tmp" or path == "/":
            return path
        return None

    def _look_path(self, pod, name, workdir):
        """exec.Command's LookPath, in the pod's view, with the sidecar's PATH."""
        if "/" in name:
            full = name if name.startswith("/") else go_join(workdir, name)
            host = self.to_host(pod, full)
            if host is None or not os.path.exists(host):
                return "fork/exec %s: no such file or directory" % name
            if os.path.isdir(host) or not os.access(host, os.X_OK):
                return "fork/exec %s: permission denied" % name
            return None
        for d in os.environ.get("PATH", "").split(":"):
            cand = go_join(d or ".", name)
            if not cand.startswith("/"):
                cand = go_join(workdir, cand)
            host = self.to_host(pod, cand)
            if host and os.path.isfile(host) and os.access(host, os.X_OK):
                return None
        return 'exec: "%s": executable file not found in $PATH' % name

    # ---- Execute ----------------------------------------------------------------------

    def execute(self, pod, argv, env, workdir, timeout_s, grpc_timeout_s):
        """Runs one Command step. Returns (stdout, stderr, exit_code) as the operator
        records them (transport errors already turned into stderr/exit 1)."""
        if not argv:
            return "", "no command specified", 1
        if not os.path.isdir(pod.root):
            return "", UNAVAILABLE_MSG, 1
        if pod.container is not None:
            return self._execute_in_container(pod, argv, env, workdir, timeout_s, grpc_timeout_s)
        host_wd = self.to_host(pod, workdir)
        if host_wd is None or not os.path.isdir(host_wd):
            return "", "failed to start command: chdir %s: no such file or directory" % workdir, 1
        err = self._look_path(pod, argv[0], workdir)
        if err:
            return "", "failed to start command: " + err, 1

        full_env = self._step_env(pod, env)
        if self.bwrap:
            cmd = [self.bwrap, "--die-with-parent"]
            for d in self.ro_dirs:
                cmd += ["--ro-bind", d, d]
            for link, target in self.links.items():
                cmd += ["--symlink", target, link]
            cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
            for mp, host in sorted(pod.mounts.items()):
                cmd += ["--bind", host, mp]
            cmd += ["--chdir", workdir, "--"] + list(argv)
            cwd = pod.root
        else:
            cmd, cwd = list(argv), host_wd
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as e:
            return "", "failed to start command: fork/exec %s: %s" % (argv[0], e.strerror.lower()), 1

        out, errc = _Capture(proc.stdout.fileno()), _Capture(proc.stderr.fileno())
        out.start()
        errc.start()
        limit, kind = _first_deadline(timeout_s, grpc_timeout_s)
        killed = None
        try:
            proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            killed = kind
            try:
                proc.kill()      # the direct process only, like cmd.Process.Kill()
            except OSError:
                pass
            proc.wait()
        out.proc_exited.set()
        errc.proc_exited.set()
        out.join()
        errc.join()
        proc.stdout.close()
        proc.stderr.close()
        return _step_result(pod, killed, proc.returncode, out, errc)

    def _step_env(self, pod, env):
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env["FAKE_ARL_POD"] = "%s/%s" % (self.instance, pod.uid)
        return full_env

    def _execute_in_container(self, pod, argv, env, workdir, timeout_s, grpc_timeout_s):
        """exec into the pod's container: same filesystem, PID namespace and /tmp as
        every other step of the pod; the timer kills the direct process only."""
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            conn, _pid = pod.container.exec(argv, self._step_env(pod, env), go_join(workdir), out_w, err_w)
        except pod_container.StartError as e:
            os.close(out_r)
            os.close(err_r)
            return "", "failed to start command: %s" % e, 1
        except OSError:
            os.close(out_r)
            os.close(err_r)
            return "", UNAVAILABLE_MSG, 1
        out, errc = _Capture(out_r), _Capture(err_r)
        out.start()
        errc.start()
        limit, kind = _first_deadline(timeout_s, grpc_timeout_s)
        killed, code = None, -1
        try:
            code = pod_container.wait_exit(conn, limit)
            if code is None:
                killed = kind
                pod_container.kill(conn)      # the direct process only, like cmd.Process.Kill()
                code = pod_container.wait_exit(conn, None)
        except (OSError, ValueError, KeyError):
            killed = killed or "lost"         # the container ended under the step
        finally:
            conn.close()
        out.proc_exited.set()
        errc.proc_exited.set()
        out.join()
        errc.join()
        os.close(out_r)
        os.close(err_r)
        if killed == "lost" and not pod.deleting:
            return "", UNAVAILABLE_MSG, 1
        return _step_result(pod, killed, code, out, errc)

    # ---- UpdateFiles ------------------------------------------------------------------

    def write_file(self, pod, full_path, content):
        """Writes content verbatim at full_path (a path in the pod's view). Returns an
        error message or None. Directories 0755, file 0644 (umask applies, as in Go)."""
        if not os.path.isdir(pod.root):
            return "rpc error: code = Unavailable desc = connection error"
        host = None
        for mp in pod.mounts:
            if full_path == mp or full_path.startswith(mp.rstrip("/") + "/"):
                host = self.to_host(pod, full_path)
        if host is None:
            # A real sidecar would write into its container's own filesystem (e.g. ../
            # out of /workspace). The fake refuses rather than write outside the pod.
            return "failed to write file %s: outside the pod volumes (fake-arl refuses)" % full_path
        d = os.path.dirname(host)
        created = None                 # the topmost directory makedirs creates
        if not os.path.exists(d):
            created = d
            while not os.path.exists(os.path.dirname(created)):
                created = os.path.dirname(created)
        try:
            os.makedirs(d, mode=0o755, exist_ok=True)
        except OSError as e:
            return "failed to create directory %s: %s" % (os.path.dirname(full_path), e.strerror)
        try:
            fd = os.open(host, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            with os.fdopen(fd, "wb") as fh:
                fh.write(content.encode("utf-8"))
            # written by the pod's root: its steps may change it
            pod_container.chown_to_pod(created or host)
        except OSError as e:
            return "failed to write file %s: %s" % (full_path, e.strerror)
        return None

    # ---- pod teardown -----------------------------------------------------------------

    def kill_pod_processes(self, pod_uid=None):
        """Kills every process tagged with this pod (or, with None, with any pod of this
        server): the steps' background children that outlived their step."""
        tag = ("FAKE_ARL_POD=%s/%s" % (self.instance, pod_uid)).encode() if pod_uid else None
        prefix = ("FAKE_ARL_POD=%s/" % self.instance).encode()
        me = os.getpid()
        for _ in range(3):
            found = False
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or int(pid) == me:
                    continue
                try:
                    with open("/proc/%s/environ" % pid, "rb") as fh:
                        envs = fh.read().split(b"\0")
                except OSError:
                    continue
                if any((e == tag) if tag else e.startswith(prefix) for e in envs):
                    found = True
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except OSError:
                        pass
            if not found:
                return
            time.sleep(0.02)


def _first_deadline(timeout_s, grpc_timeout_s):
    """Which deadline fires first: the gRPC context is created before the sidecar's
    timer starts, so with equal values the gRPC deadline wins."""
    limit, kind = None, None
    if timeout_s > 0:
        limit, kind = timeout_s, "timer"
    if grpc_timeout_s > 0 and (limit is None or grpc_timeout_s <= limit):
        limit, kind = grpc_timeout_s, "grpc"
    return limit, kind


def _step_result(pod, killed, code, out, errc):
    if killed == "grpc":
        return "", DEADLINE_MSG, 1
    if pod.deleting:
        # the pod was deleted under the command (its Sandbox or pool deleted): the
        # operator's gRPC stream breaks and the step's output is lost
        return "", ("Failed to execute command: gRPC stream receive failed: rpc error: code = "
                    "Unavailable desc = error reading from server: EOF\n"), 1
    if killed == "timer" or code < 0:
        code = -1     # exec.ExitError.ExitCode() is -1 for a signal
    return "".join(out.lines), "".join(errc.lines), code


class _Capture(threading.Thread):
    """Reads one output pipe like the sidecar's bufio.Scanner goroutine."""

    def __init__(self, fd):
        super().__init__(daemon=True)
        self.fd = fd
        self.lines = []
        self.buf = b""
        self.too_long = False
        self.proc_exited = threading.Event()

    def run(self):
        pipe_reader.drain(self.fd, self._feed, self.proc_exited, lambda: self.too_long)
        if self.buf and not self.too_long:
            self._line(self.buf)
        self.buf = b""

    def _feed(self, data):
        self.buf += data
        while True:
            i = self.buf.find(b"\n")
            if i < 0:
                break
            self._line(self.buf[:i])
            self.buf = self.buf[i + 1:]
        if len(self.buf) >= MAX_TOKEN:
            self.too_long = True      # bufio.ErrTooLong: the scanner goroutine gives up
            self.buf = b""

    def _line(self, line):
        if len(line) >= MAX_TOKEN:
            self.too_long = True
            return
        if line.endswith(b"\r"):
            line = line[:-1]
        self.lines.append(line.decode("utf-8", "replace") + "\n")


def make_pod_dirs(root, volume_mounts, seed_dir=None):
    """Creates a pod's volume directories. volume_mounts: {mountPath: volume name}."""
    mounts = {}
    os.makedirs(root, exist_ok=True)
    for mp, vol in sorted(volume_mounts.items()):
        host = os.path.join(root, "vol-" + vol)
        os.makedirs(host, exist_ok=True)
        os.chmod(host, 0o777)    # an emptyDir is world-writable
        mounts[mp] = host
    if seed_dir:
        shutil.copytree(seed_dir, mounts["/workspace"], dirs_exist_ok=True, symlinks=True)
        pod_container.chown_to_pod(mounts["/workspace"])
        os.chmod(mounts["/workspace"], 0o777)
    return mounts
