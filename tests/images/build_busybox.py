#!/usr/bin/env python3
"""Builds a small two-layer test image from Debian's busybox-static, without a registry.

    build_busybox.py OUTDIR [--tag NAME:TAG] [--busybox PATH]

writes, all of the same image (same config, same layers, so the same image id):
    OUTDIR/oci/          an OCI image layout (oci-layout, index.json, blobs/sha256/)
    OUTDIR/oci.tar       that layout as a tar (an oci-archive)
    OUTDIR/docker.tar    what `docker save` writes (manifest.json, CONFIG.json, DIR/layer.tar)
    OUTDIR/image.env     shell lines: TAG=, IMAGE_ID=, LAYER1_DIFF=, LAYER2_DIFF=

Layer 1 (tar+gzip): /bin/busybox and a symlink per applet (absolute, as images have them),
/etc/passwd with a user 'app' (uid 1000, home /home/app), /etc/os-release saying layer1,
/data/old.txt and /data/keep.txt, /opt/app/{a,b}.txt.
Layer 2 (tar+zstd when the zstd program is there, else plain tar): deletes /data/old.txt (a
whiteout), makes /opt/app opaque and puts /opt/app/c.txt in it, replaces /etc/os-release
(layer2), adds /home/app/hello.txt.
Config: Env PATH and IMAGE_VAR=from-image, WorkingDir /home/app, User app.
Everything is deterministic (fixed times and owners), so digests are the same on every run.
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

MTIME = 1700000000


def add(tar, name, data=None, mode=0o644, kind=tarfile.REGTYPE, link="", uid=0, gid=0):
    ti = tarfile.TarInfo(name)
    ti.mtime = MTIME
    ti.uid, ti.gid = uid, gid
    ti.uname = ti.gname = ""
    ti.type = kind
    ti.mode = mode
    ti.linkname = link
    if kind == tarfile.REGTYPE:
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))
    else:
        tar.addfile(ti)


def d(tar, name, mode=0o755, uid=0, gid=0):
    add(tar, name, kind=tarfile.DIRTYPE, mode=mode, uid=uid, gid=gid)


def make_tar(build):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        build(tar)
    return buf.getvalue()


def layer1(busybox):
    with open(busybox, "rb") as f:
        bb = f.read()
    applets = subprocess.run([busybox, "--list"], check=True, capture_output=True,
                             text=True).stdout.split()

    def build(tar):
        for name in ("bin", "etc", "data", "opt", "opt/app", "home", "root", "usr", "usr/bin",
                     "var"):
            d(tar, name)
        d(tar, "tmp", mode=0o1777)
        d(tar, "home/app", uid=1000, gid=1000)
        add(tar, "bin/busybox", bb, mode=0o755)
        for a in sorted(set(applets)):
            if a != "busybox":
                add(tar, "bin/" + a, kind=tarfile.SYMTYPE, link="/bin/busybox", mode=0o777)
        add(tar, "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n")
        add(tar, "etc/group", b"root:x:0:\napp:x:1000:\n")
        add(tar, "etc/os-release", b"ID=arl-test\nLAYER=layer1\n")
        add(tar, "data/old.txt", b"old\n")
        add(tar, "data/keep.txt", b"keep\n")
        add(tar, "opt/app/a.txt", b"a\n")
        add(tar, "opt/app/b.txt", b"b\n")
    return make_tar(build)


def layer2():
    def build(tar):
        d(tar, "data")
        add(tar, "data/.wh.old.txt", b"")
        d(tar, "opt")
        d(tar, "opt/app")
        add(tar, "opt/app/.wh..wh..opq", b"")
        add(tar, "opt/app/c.txt", b"c\n")
        d(tar, "etc")
        add(tar, "etc/os-release", b"ID=arl-test\nLAYER=layer2\n")
        d(tar, "home")
        d(tar, "home/app", uid=1000, gid=1000)
        add(tar, "home/app/hello.txt", b"hello from the image\n", uid=1000, gid=1000)
    return make_tar(build)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--tag", default="arl-test/busybox:1")
    ap.add_argument("--busybox", default="/bin/busybox")
    a = ap.parse_args()
    if not os.access(a.busybox, os.X_OK):
        sys.exit("build_busybox.py: %s missing (apt-get install busybox-static)" % a.busybox)

    l1 = layer1(a.busybox)
    l2 = layer2()
    l1z = gzip.compress(l1, mtime=0)
    if shutil.which("zstd"):
        l2z = subprocess.run(["zstd", "-q", "-c", "-3"], input=l2, check=True,
                             capture_output=True).stdout
        l2mt = "application/vnd.oci.image.layer.v1.tar+zstd"
    else:
        l2z, l2mt = l2, "application/vnd.oci.image.layer.v1.tar"
    name, _, tag = a.tag.rpartition(":")
    if not name or "/" in tag:
        name, tag = a.tag, "latest"

    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": {
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "IMAGE_VAR=from-image"],
            "WorkingDir": "/home/app",
            "User": "app",
            "Cmd": ["/bin/sh"],
        },
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + sha(l1), "sha256:" + sha(l2)]},
        "history": [{"created_by": "layer1"}, {"created_by": "layer2"}],
    }
    cfg = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + sha(cfg), "size": len(cfg)},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
             "digest": "sha256:" + sha(l1z), "size": len(l1z)},
            {"mediaType": l2mt, "digest": "sha256:" + sha(l2z), "size": len(l2z)},
        ],
    }
    man = json.dumps(manifest, sort_keys=True).encode()
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + sha(man), "size": len(man),
            "annotations": {"org.opencontainers.image.ref.name": tag,
                            "io.containerd.image.name": name + ":" + tag},
        }],
    }
    idx = json.dumps(index, sort_keys=True).encode()
    layout = b'{"imageLayoutVersion":"1.0.0"}'

    os.makedirs(a.outdir, exist_ok=True)
    oci = os.path.join(a.outdir, "oci")
    shutil.rmtree(oci, ignore_errors=True)
    blobs = os.path.join(oci, "blobs", "sha256")
    os.makedirs(blobs)
    files = {"oci-layout": layout, "index.json": idx}
    for b in (cfg, man, l1z, l2z):
        files["blobs/sha256/" + sha(b)] = b
    for rel, b in files.items():
        with open(os.path.join(oci, rel), "wb") as f:
            f.write(b)

    def archive(path, entries, dirs=()):
        def build(tar):
            for dd in dirs:
                d(tar, dd)
            for rel, b in entries:
                add(tar, rel, b)
        with open(path, "wb") as f:
            f.write(make_tar(build))

    archive(os.path.join(a.outdir, "oci.tar"), sorted(files.items()), ("blobs", "blobs/sha256"))

    cfgname = sha(cfg) + ".json"
    ids = [sha(l1), sha(l2)]
    dman = [{"Config": cfgname, "RepoTags": [name + ":" + tag],
             "Layers": [i + "/layer.tar" for i in ids]}]
    repos = {name: {tag: ids[-1]}}
    dentries = [("manifest.json", json.dumps(dman).encode()), (cfgname, cfg),
                ("repositories", json.dumps(repos).encode()),
                (ids[0] + "/layer.tar", l1), (ids[1] + "/layer.tar", l2)]
    archive(os.path.join(a.outdir, "docker.tar"), dentries, ids)

    with open(os.path.join(a.outdir, "image.env"), "w") as f:
        f.write("TAG=%s:%s\nIMAGE_ID=sha256:%s\nLAYER1_DIFF=sha256:%s\nLAYER2_DIFF=sha256:%s\n"
                % (name, tag, sha(cfg), sha(l1), sha(l2)))


if __name__ == "__main__":
    main()
