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
"""

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


def serve(conn):
    fds = []
    try:
        msg, fds, _, _ = socket.recv_fds(conn, 1 << 22, 2)
        if not msg or len(fds) != 2:
            return
        req = json.loads(msg)
        cwd = req["cwd"]
        if not os.path.isdir(cwd):
            send(conn, {"error": "chdir %s: no such file or directory" % cwd})
            return
        prog, err = look_path(req["argv"][0], cwd, req.get("path", ""))
        if err:
            send(conn, {"error": err})
            return
        try:
            proc = subprocess.Popen(req["argv"], executable=prog, cwd=cwd, env=req["env"],
                                    stdin=subprocess.DEVNULL, stdout=fds[0], stderr=fds[1])
        except OSError as e:
            send(conn, {"error": "fork/exec %s: %s" % (req["argv"][0], (e.strerror or str(e)).lower())})
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
