"""A busybox OCI image built by hand, with no network and no image tools.

One uncompressed layer (busybox-static plus applet symlinks, /etc/passwd),
a config and a manifest, written as an OCI image layout packed into a tar
("oci-archive"): what `ctr images import` and `podman load` both read.
"""
import hashlib
import io
import json
import os
import tarfile

APPLETS = (
    "sh", "true", "false", "echo", "cat", "ls", "sleep", "id", "hostname",
    "ps", "kill", "wc", "head", "env", "pwd", "test", "grep", "stat",
    "touch", "mkdir", "rm", "uname", "netstat", "nc", "httpd", "top", "tr", "ip", "wget",
)
ETC_FILES = {
    "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    "etc/group": b"root:x:0:\nnogroup:x:65534:\n",
}
DIRS = ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "run", "var", "var/www")
EPOCH = 1700000000  # fixed mtime: the same inputs always give the same digests


def _digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _tarinfo(name, kind, mode, size=0, target=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = target
    info.mtime = EPOCH
    return info


def build_layer(busybox):
    """The layer tar (uncompressed) as bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in DIRS:
            tar.addfile(_tarinfo(d, tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755))
        with open(busybox, "rb") as f:
            data = f.read()
        tar.addfile(_tarinfo("bin/busybox", tarfile.REGTYPE, 0o755, len(data)), io.BytesIO(data))
        for applet in APPLETS:
            tar.addfile(_tarinfo("bin/" + applet, tarfile.SYMTYPE, 0o777, target="busybox"))
        for name, data in ETC_FILES.items():
            tar.addfile(_tarinfo(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
    return buf.getvalue()


def _image_config(layer_digest, cmd=("sh",)):
    return {
        "architecture": "amd64",
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": list(cmd),
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "pyrunc tests: busybox-static"}],
    }


def _json_bytes(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def build_oci_archive(path, busybox, name, cmd=("sh",)):
    """Write an oci-archive tar at `path` holding one image called `name`
    (e.g. "localhost/pyrunc-busybox:latest") whose default command is
    `cmd`; returns the manifest digest."""
    layer = build_layer(busybox)
    config = _json_bytes(_image_config(_digest(layer), cmd))
    manifest = _json_bytes({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": _digest(layer), "size": len(layer)}],
    })
    index = _json_bytes({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": _digest(manifest), "size": len(manifest),
            "platform": {"architecture": "amd64", "os": "linux"},
            # containerd names the image from the first, podman from the second.
            "annotations": {"io.containerd.image.name": name,
                            "org.opencontainers.image.ref.name": name},
        }],
    })
    files = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index)]
    files += [("blobs/sha256/" + _digest(b).split(":")[1], b) for b in (layer, config, manifest)]
    with tarfile.open(path, "w") as tar:
        for d in ("blobs", "blobs/sha256"):
            tar.addfile(_tarinfo(d, tarfile.DIRTYPE, 0o755))
        for fname, data in files:
            tar.addfile(_tarinfo(fname, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))
    return _digest(manifest)
