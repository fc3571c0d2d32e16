#!/usr/bin/env python3
"""Writes a one-layer OCI image archive (oci-layout, index.json, blobs) from local
files, for `ctr images import`: the node (tests/cluster/node.sh) runs images that
were never in a registry.

    oci-image.py --name REF --out FILE.tar --entrypoint /bin [--user UID:GID]
                 [--port 8080] SRC:DEST ...

Each SRC file lands at DEST with mode 0755, owned by root. The layer is
deterministic (sorted entries, mtime 0), so the same files give the same image
digest. No shell or anything else is added; with --user, /etc/passwd and
/etc/group name the user "nonroot" (as distroless does), so tools that print
user names have one.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile


def blob(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def add_file(tar, path, data, mode):
    info = tarfile.TarInfo(path.lstrip("/"))
    info.size = len(data)
    info.mode = mode
    info.mtime = 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar, path):
    info = tarfile.TarInfo(path.lstrip("/"))
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = 0
    tar.addfile(info)


def layer(files, user):
    """The uncompressed layer tar: directories first, then files, sorted."""
    entries = {}
    for src, dest in files:
        with open(src, "rb") as f:
            entries[dest] = (f.read(), 0o755)
    if user is not None:
        uid, gid = user
        entries["/etc/passwd"] = (
            f"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:{uid}:{gid}:nonroot:/home/nonroot:/sbin/nologin\n".encode(),
            0o644,
        )
        entries["/etc/group"] = (f"root:x:0:\nnonroot:x:{gid}:\n".encode(), 0o644)
    dirs = set()
    for dest in entries:
        parts = dest.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in sorted(dirs):
            add_dir(tar, d)
        for dest in sorted(entries):
            data, mode = entries[dest]
            add_file(tar, dest, data, mode)
    return out.getvalue()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True, help="image reference, e.g. localhost/sealant/pause:1")
    p.add_argument("--out", required=True)
    p.add_argument("--entrypoint", required=True)
    p.add_argument("--user", help="UID:GID (numeric, so runAsNonRoot can check it)")
    p.add_argument("--port", action="append", default=[])
    p.add_argument("files", nargs="+", metavar="SRC:DEST")
    a = p.parse_args()

    files = []
    for spec in a.files:
        src, sep, dest = spec.partition(":")
        if not sep or not dest.startswith("/"):
            sys.exit(f"oci-image.py: {spec!r}: expected SRC:/ABSOLUTE/DEST")
        files.append((src, dest))
    user = None
    if a.user:
        uid, _, gid = a.user.partition(":")
        if not (uid.isdigit() and gid.isdigit()):
            sys.exit(f"oci-image.py: --user {a.user!r}: expected numeric UID:GID")
        user = (uid, gid)

    raw = layer(files, user)
    # mtime=0: the same input gives the same compressed bytes.
    packed = gzip.compress(raw, compresslevel=6, mtime=0)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": [a.entrypoint],
            "Env": ["PATH=/"],
            "WorkingDir": "/",
            **({"User": a.user} if a.user else {}),
            **({"ExposedPorts": {f"{port}/tcp": {} for port in a.port}} if a.port else {}),
        },
        "rootfs": {"type": "layers", "diff_ids": [blob(raw)]},
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": blob(config_bytes),
            "size": len(config_bytes),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": blob(packed),
                "size": len(packed),
            }
        ],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": blob(manifest_bytes),
                "size": len(manifest_bytes),
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": a.name,
                    "org.opencontainers.image.ref.name": a.name.rsplit(":", 1)[-1],
                },
            }
        ],
    }
    tmp = a.out + ".tmp"
    with tarfile.open(tmp, mode="w") as tar:
        add_file(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}', 0o644)
        add_file(tar, "index.json", json.dumps(index, sort_keys=True).encode(), 0o644)
        add_dir(tar, "blobs")
        add_dir(tar, "blobs/sha256")
        for data in (packed, config_bytes, manifest_bytes):
            add_file(tar, "blobs/sha256/" + blob(data).split(":", 1)[1], data, 0o644)
    os.replace(tmp, a.out)
    print(blob(manifest_bytes))


if __name__ == "__main__":
    main()
