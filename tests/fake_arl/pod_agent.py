"""The process a fake pod's container runs (under the host's /usr/bin/python3): it
stands for the container's sidecar process, into which each Command step is exec'd.

argv: LISTEN_FD LIFELINE_FD. The server connects to the listening AF_UNIX
SOCK_SEQPACKET socket once per step and sends one JSON request with the step's stdout
and stderr pipe ends attached (SCM_RIGHTS):
  {"argv": [...], "env": {...}, "cwd": "/workspace", "path": "<the sidecar's PATH>"}
It answers {"pid": N} or {"error": "<Go error text>"} (a start failure), then
{"exit": CODE} (Popen's returncode: negative for a signal) when the direct process
ends. {"kill": true} from the server SIGKILLs the direct process only, as Go's
cmd.Process.Kill() does; its children stay in the pod. When the lifeline pipe reaches
EOF (pod deleted, server gone) the agent exits, which ends bwrap's PID namespace.

The fake gateway (tests/fake_gateway) also has the agent move files, as the ARL
executor-agent does for upload-file and download-file, with ONE pipe end attached:
  {"op": "write", "path": "/abs", "sha256": "<hex>"|null}  + the read end of the data:
      mkdir -p the parent, write a temp file beside it, check the SHA, rename, mode 0644;
      answers {"bytesWritten": N, "sha256": "<hex>"} or {"error": TEXT, "errno": N}
  {"op": "read", "path": "/abs"}  + the write end: answers {"ok": true} (or an error),
      writes the file into the pipe, closes it, then {"size": N, "sha256": "<hex>"}
Errors carry the errno (or 7 for a request the agent refuses) as the real agent's
"[N] text" errors do.
"""

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading


def look_path(name, cwd, path):
    """Go's exec.LookPath with the sidecar's PATH; returns (program, error)."""
    if "/" in name:
        full = name if name.startswith("/") else os.path.join(cwd, name)
        if not os.path.exists(full):
            return None, "fork/exec %s: no such file or directory" % name
        if os.path.isdir(full) or not os.access(full, os.X_OK):
            return None, "fork/exec %s: permission denied" % name
        return full, None
    for d in path.split(":"):
        cand = os.path.join(d or ".", name)
        if not cand.startswith("/"):
            cand = os.path.join(cwd, cand)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand, None
    return None, 'exec: "%s": executable file not found in $PATH' % name


def send(conn, obj):
    try:
        conn.send(json.dumps(obj).encode())
    except OSError:
        pass


def os_error(e):
    return {"error": "%s (os error %d)" % (e.strerror or str(e), e.errno or 0), "errno": e.errno or 0}


def write_file(conn, req, fd):
    path = req["path"]
    if not path.startswith("/"):
        send(conn, {"error": "path must be absolute", "errno": 7})
        return
    tmp = None
    try:
        parent = os.path.dirname(os.path.normpath(path))
        os.makedirs(parent, mode=0o755, exist_ok=True)
        tmp = "%s/.%s.arl-upload.%d" % (parent, os.path.basename(path), threading.get_ident())
        with open(tmp, "wb") as out, os.fdopen(fd, "rb", closefd=True) as src:
            fd = None
            h, n = copy_hashed(src, out)
        want = (req.get("sha256") or "").lower()
        if want and want != h.hexdigest():
            os.unlink(tmp)
            send(conn, {"error": "sha256 mismatch: expected %s, got %s" % (want, h.hexdigest()), "errno": 7})
            return
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
        tmp = None
        send(conn, {"bytesWritten": n, "sha256": h.hexdigest()})
    except OSError as e:
        send(conn, os_error(e))
    finally:
        if fd is not None:
            os.close(fd)
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def copy_hashed(src, out):
    """Copies src to out in 64 KiB pieces; returns (the sha256 object, the byte count)."""
    h, n = hashlib.sha256(), 0
    while True:
        data = src.read(1 << 16)
        if not data:
            return h, n
        h.update(data)
        out.write(data)
        n += len(data)


def read_file(conn, req, fd):
    path = req["path"]
    try:
        if not path.startswith("/"):
            send(conn, {"error": "path must be absolute", "errno": 7})
            return
        try:
            src = open(path, "rb")
        except OSError as e:
            send(conn, os_error(e))
            return
        with src:
            if not os.path.isfile(path):
                send(conn, {"error": "Is a directory (os error 21)", "errno": 21})
                return
            send(conn, {"ok": True})
            with os.fdopen(fd, "wb", closefd=True) as out:
                fd = None
                h, n = copy_hashed(src, out)
        send(conn, {"size": n, "sha256": h.hexdigest()})
    except OSError as e:
        send(conn, os_error(e))
    finally:
        if fd is not None:
            os.close(fd)


def serve(conn):
    fds = []
    try:
        msg, fds, _, _ = socket.recv_fds(conn, 1 << 22, 2)
        if not msg:
            return
        req = json.loads(msg)
        if req.get("op") in ("write", "read") and len(fds) == 1:
            fd, fds = fds[0], []
            (write_file if req["op"] == "write" else read_file)(conn, req, fd)
            return
        if len(fds) != 2:
            return
        cwd = req["cwd"]
        if not os.path.isdir(cwd):
            send(conn, {"error": "chdir %s: no such file or directory" % cwd, "errno": 2})
            return
        prog, err = look_path(req["argv"][0], cwd, req.get("path", ""))
        if err:
            send(conn, {"error": err, "errno": 13 if err.endswith("permission denied") else 2})
            return
        try:
            proc = subprocess.Popen(req["argv"], executable=prog, cwd=cwd, env=req["env"],
                                    stdin=subprocess.DEVNULL, stdout=fds[0], stderr=fds[1])
        except OSError as e:
            send(conn, {"error": "fork/exec %s: %s" % (req["argv"][0], (e.strerror or str(e)).lower()),
                        "errno": e.errno or 0})
            return
        for fd in fds:
            os.close(fd)
        fds = []
        send(conn, {"pid": proc.pid})
        threading.Thread(target=read_kill, args=(conn, proc), daemon=True).start()
        send(conn, {"exit": proc.wait()})
    finally:
        for fd in fds:
            os.close(fd)
        conn.close()


def read_kill(conn, proc):
    try:
        while True:
            msg = conn.recv(4096)
            if not msg:
                return
            if json.loads(msg).get("kill"):
                try:
                    proc.kill()
                except OSError:
                    pass
    except (OSError, ValueError):
        return


def watch_lifeline(fd):
    while True:
        try:
            if not os.read(fd, 4096):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    os._exit(0)


def main():
    lsock = socket.socket(fileno=int(sys.argv[1]))
    threading.Thread(target=watch_lifeline, args=(int(sys.argv[2]),), daemon=True).start()
    os.write(1, b"ready\n")
    while True:
        conn, _ = lsock.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
