"""A fake pod as ONE persistent container, into which each Command step is exec'd
(as `kubectl exec` into a pod, or the afa0e55 sidecar's exec.Command in its own
container).

The container is started when the pod becomes Running and lives until the pod is
deleted (or the server stops): the host's uid POD_UID (the server's own uid when it is
not root) runs `unshare --user --map-root-user --mount`, mounts the writable layers
there, then execs `bwrap --unshare-pid --cap-drop ALL` whose command is pod_agent.py.
Inside, steps are uid 0 of that user namespace (host uid POD_UID: nothing is host
root), share one PID namespace, one /tmp and one root filesystem:
- `/` is bwrap's tmpfs, writable (new top-level directories such as /root or /opt
  live in memory until the pod ends);
- `/usr/local` and `/etc` are overlays: lowers [a skeleton of the host tree's
  directories owned by POD_UID, the host tree], upper in the pod directory. Merged
  directories take the skeleton's owner, so uid 0 inside creates, deletes and renames
  anywhere there (a `pip install`, a script copied to /usr/local/bin); host files keep
  their owner (nobody inside) and cannot be changed in place. Nothing reaches the host;
- the rest of `/usr` (and the /bin, /lib symlinks) is the host's, read-only;
- `/tmp` is a directory of the pod (on disk), the volumes are bound at their mountPath.
Ending the container: the agent exits when its lifeline pipe closes (the server closes
it, or dies), bwrap's PID 1 goes with it and the kernel kills the whole PID namespace;
the server also SIGKILLs bwrap and waits for it.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

POD_UID = 65533          # not the local backend's 65530: its tests look for leftovers of that uid
OVERLAYS = ("/usr/local", "/etc")
AGENT_PATH = "/.fake-arl/pod_agent.py"
PYTHON = "/usr/bin/python3"


def host_view():
    """The host directories a pod's bwrap view binds read-only, and the / symlinks to recreate
    in it (merged /usr): (ro_dirs, {link: target})."""
    ro_dirs = [d for d in ("/usr", "/etc") if os.path.isdir(d)]
    links = {}
    for d in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        p = "/" + d
        if os.path.islink(p):
            links[p] = os.readlink(p)
        elif os.path.isdir(p):
            ro_dirs.append(p)
    return ro_dirs, links


def pod_uid():
    return POD_UID if os.geteuid() == 0 else os.geteuid()


def _chown_tree(path, uid):
    if os.geteuid() != 0:
        return
    os.lchown(path, uid, uid)
    for d, dirs, files in os.walk(path):
        for n in dirs + files:
            os.lchown(os.path.join(d, n), uid, uid)


def chown_to_pod(path):
    """Files the server writes into a pod (FilePatch, --pool-seed) belong to the pod's
    uid, as files a pod's root writes do."""
    _chown_tree(path, pod_uid())


def rmtree(path):
    """shutil.rmtree that also removes an overlay's workdir (its `work` is mode 000 and,
    for a server that is not root, its own). Only directories strictly inside path ever
    have their mode changed; any other error is ignored."""
    top = os.path.abspath(path)

    def inside(p):
        return os.path.abspath(p).startswith(top + "/")

    def fix(_func, p, _exc):
        if not inside(p):
            return
        try:
            parent = os.path.dirname(os.path.abspath(p))
            if inside(parent):
                os.chmod(parent, 0o700)
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, 0o700)
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.unlink(p)
        except OSError:
            pass
    shutil.rmtree(path, onerror=fix)
    if os.path.isdir(top) and not os.path.islink(top):
        shutil.rmtree(top, ignore_errors=True)      # after a fix inside, the rmdir of top


def sweep_stale_dirs():
    """Removes temp dirs left by servers that were SIGKILLed (fake-arl.<pid>.* whose
    pid is gone), pod directories included. The fake ARL server and the fake gateway
    both name their temp dirs so."""
    base = tempfile.gettempdir()
    for d in os.listdir(base):
        parts = d.split(".")
        if len(parts) == 3 and parts[0] == "fake-arl" and parts[1].isdigit():
            try:
                os.kill(int(parts[1]), 0)
            except ProcessLookupError:
                rmtree(os.path.join(base, d))     # overlay workdirs are mode 000
            except OSError:
                pass


def _let_pod_uid_through(pod_root):
    """The pod's uid mounts layers below pod_root: the pod directory, the pods directory
    and the server's temp dir (0700) above it become traversable (not listable). A
    --workdir below other closed directories makes the container fail to start."""
    if os.geteuid() != 0:
        return
    pods = os.path.dirname(os.path.abspath(pod_root))
    dirs = [pod_root, pods]
    if os.path.basename(os.path.dirname(pods)).startswith("fake-arl."):
        dirs.append(os.path.dirname(pods))
    for d in dirs:
        os.chmod(d, (os.stat(d).st_mode & 0o7777) | 0o711)


class Shared:
    """What every container of one server shares: the skeletons and the agent script,
    built once, readable by the pod uid."""

    def __init__(self, base):
        self.base = base
        self.mu = threading.Lock()
        self.ready = False

    def prepare(self):
        with self.mu:
            if self.ready:
                return
            uid = pod_uid()
            os.makedirs(self.base, exist_ok=True)
            for tree in OVERLAYS:
                skel = self.skeleton(tree)
                os.makedirs(skel, exist_ok=True)
                for d, dirs, _files in os.walk(tree):
                    rel = os.path.relpath(d, tree)
                    for n in dirs:
                        src = os.path.join(d, n)
                        dst = os.path.normpath(os.path.join(skel, rel, n))
                        try:
                            os.mkdir(dst, os.stat(src).st_mode & 0o7777)
                        except OSError:
                            continue
                _chown_tree(skel, uid)
            shutil.copy(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pod_agent.py"),
                        os.path.join(self.base, "pod_agent.py"))
            for d, _dirs, files in os.walk(self.base):
                os.chmod(d, os.stat(d).st_mode | 0o755)
                for n in files:
                    os.chmod(os.path.join(d, n), 0o644)
            self.ready = True

    def skeleton(self, tree):
        return os.path.join(self.base, "skel" + tree.replace("/", "-"))


class Container:
    """One pod's running container; exec() runs a step in it."""

    def __init__(self, proc, lifeline, sock_path):
        self.proc = proc
        self.lifeline = lifeline
        self.sock_path = sock_path

    @staticmethod
    def start(shared, pod, bwrap, ro_dirs, links, network=True):
        """Starts the container of pod; returns it, or raises OSError/RuntimeError.
        network=False: a network namespace of its own (loopback only), for the fake
        gateway's sessions created with allowInternet false."""
        shared.prepare()
        uid = pod_uid()
        cdir = os.path.join(pod.root, ".container")
        os.makedirs(cdir)
        _let_pod_uid_through(pod.root)
        mounts = []
        for tree in OVERLAYS:
            layer = os.path.join(cdir, tree.strip("/").replace("/", "-"))
            for sub in ("upper", "work", "merged"):
                os.makedirs(os.path.join(layer, sub))
            mounts.append(("lowerdir=%s:%s,upperdir=%s/upper,workdir=%s/work,userxattr"
                           % (shared.skeleton(tree), tree, layer, layer), layer + "/merged", tree))
        tmp = os.path.join(cdir, "tmp")
        os.mkdir(tmp)
        _chown_tree(cdir, uid)
        os.chmod(tmp, 0o1777)

        cmd = [bwrap, "--unshare-pid", "--cap-drop", "ALL", "--die-with-parent", "--new-session"]
        if not network:
            cmd.append("--unshare-net")
        for d in ro_dirs:
            if d != "/usr/local" and d not in OVERLAYS:
                cmd += ["--ro-bind", d, d]
        for link, target in links.items():
            cmd += ["--symlink", target, link]
        for _opts, merged, tree in mounts:
            cmd += ["--bind", merged, tree]
        cmd += ["--proc", "/proc", "--dev", "/dev", "--bind", tmp, "/tmp"]
        for mp, host in sorted(pod.mounts.items()):
            cmd += ["--bind", host, mp]
        cmd += ["--ro-bind", os.path.join(shared.base, "pod_agent.py"), AGENT_PATH]

        sock_path = os.path.join(cdir, "agent.sock")
        log_path = os.path.join(cdir, "container.log")   # not a pipe: nobody reads it while it runs
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        life_r, life_w = os.pipe()
        log = open(log_path, "wb")
        try:
            lsock.bind(sock_path)
            lsock.listen(64)
            cmd += ["--chdir", "/", "--", PYTHON, AGENT_PATH, str(lsock.fileno()), str(life_r)]
            # The mount stage runs as uid 0 of the new user namespace, then execs bwrap.
            stage = ("import os,subprocess,sys\n"
                     "for o,m in %r:\n"
                     "    subprocess.run(['mount','-t','overlay','overlay','-o',o,m],check=True)\n"
                     "os.execv(%r,%r)\n" % ([(o, m) for o, m, _ in mounts], bwrap, cmd))
            pre = []
            if os.geteuid() == 0:
                pre = ["setpriv", "--reuid", str(uid), "--regid", str(uid), "--clear-groups"]
            argv = pre + ["unshare", "--user", "--map-root-user", "--mount", PYTHON, "-c", stage]
            proc = subprocess.Popen(argv, cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=log, pass_fds=(lsock.fileno(), life_r),
                                    env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        except OSError:
            lsock.close()
            os.close(life_w)
            raise
        finally:
            os.close(life_r)
            log.close()
        lsock.close()
        ready = proc.stdout.readline()
        proc.stdout.close()
        if ready != b"ready\n":
            os.close(life_w)
            proc.kill()
            proc.wait()
            with open(log_path, "rb") as fh:
                err = fh.read(4096).decode("utf-8", "replace").strip()
            raise RuntimeError("pod container did not start: %s" % (err or "no reason given"))
        return Container(proc, life_w, sock_path)

    def exec(self, argv, env, cwd, out_w, err_w):
        """Asks the agent to run argv; returns (connection, pid) or raises StartError.
        out_w/err_w are the pipe ends the step writes (closed here)."""
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            conn.connect(self.sock_path)
            req = {"argv": list(argv), "env": env, "cwd": cwd, "path": os.environ.get("PATH", "")}
            socket.send_fds(conn, [json.dumps(req).encode()], [out_w, err_w])
        except OSError:
            conn.close()
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        reply = _recv(conn)
        if reply is None:
            conn.close()
            raise OSError("the pod's agent closed the connection")
        if "error" in reply:
            conn.close()
            raise StartError(reply["error"], reply.get("errno"))
        return conn, reply["pid"]

    def put_file(self, path, data, sha256=None):
        """Has the agent write data (bytes) at path (the upload-file semantics in
        pod_agent.py); returns its answer: {"bytesWritten","sha256"} or {"error","errno"}."""
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        r, w = os.pipe()
        try:
            conn.connect(self.sock_path)
            socket.send_fds(conn, [json.dumps({"op": "write", "path": path, "sha256": sha256}).encode()], [r])
            os.close(r)
            r = None
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(w, view[:1 << 16]):]
            except BrokenPipeError:
                pass            # the agent refused before reading; its answer says why
            os.close(w)
            w = None
            reply = _recv_reply(conn)
            return reply
        finally:
            for fd in (r, w):
                if fd is not None:
                    os.close(fd)
            conn.close()

    def get_file(self, path, start, sink):
        """Has the agent read path: start() is called once the file is open, sink(bytes)
        per piece. Returns {"size","sha256"}, or {"error","errno"} (before start() only;
        raises OSError when the agent goes away in between)."""
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        r, w = os.pipe()
        try:
            conn.connect(self.sock_path)
            socket.send_fds(conn, [json.dumps({"op": "read", "path": path}).encode()], [w])
            os.close(w)
            w = None
            reply = _recv_reply(conn)
            if "error" in reply:
                return reply
            start()
            while True:
                data = os.read(r, 1 << 16)
                if not data:
                    break
                sink(data)
            reply = _recv(conn)
            if reply is None or "error" in reply:
                raise OSError((reply or {}).get("error", "the pod's agent closed the connection"))
            return reply
        finally:
            for fd in (r, w):
                if fd is not None:
                    os.close(fd)
            conn.close()

    def stop(self):
        if self.lifeline is not None:
            os.close(self.lifeline)
            self.lifeline = None
        try:
            self.proc.kill()
        except OSError:
            pass
        self.proc.wait()


class StartError(Exception):
    def __init__(self, msg, errno=None):
        super().__init__(msg)
        self.errno = errno          # from the agent: what the gateway's "[N] text" errors carry

    def __str__(self):
        return self.args[0]


def _recv(conn):
    try:
        msg = conn.recv(1 << 16)
    except OSError:
        return None
    if not msg:
        return None
    return json.loads(msg)


def _recv_reply(conn):
    """The agent's answer; OSError when it closed the connection instead."""
    reply = _recv(conn)
    if reply is None:
        raise OSError("the pod's agent closed the connection")
    return reply


def wait_exit(conn, timeout):
    """Waits for the step's {"exit"}; returns the code, or None when timeout (seconds,
    None for no limit) passed first."""
    conn.settimeout(timeout)
    try:
        msg = conn.recv(1 << 16)
    except socket.timeout:
        return None
    finally:
        conn.settimeout(None)
    if not msg:
        raise OSError("the pod's agent closed the connection")
    return json.loads(msg)["exit"]


def kill(conn):
    try:
        conn.send(b'{"kill": true}')
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit("pod_container.py is a module of server.py")
