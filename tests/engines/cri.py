"""A private containerd 1.6 with its CRI plugin, and a kubelet-like CRI client.

containerd runs inside a network + mount namespace the test makes
(engines.netns_sandbox: tmpfs on /run and /var/lib there, so the shims'
sockets in /run/containerd/s and the runtimes' state in
/run/containerd/runc/k8s.io vanish with it), with its root, state, socket
and config under a temporary directory.  Each CRI runtime handler is an
`io.containerd.runc.v2` runtime whose `BinaryName` is a wrapper that logs
the argv, then execs the real binary (runc or pyrunc): the log shows
which runtime containerd really called.

The client is compiled at start from engines/cri_subset.proto with
grpcio-tools (test-only dependencies) into the temporary directory.

    node = CriNode(tmpdir, {"pyrunc": PYRUNC, "runc": "/usr/sbin/runc"}, busybox)
    node.start()
    pod = node.rpc("RunPodSandbox", config=node.pod_config("p1"), runtime_handler="pyrunc").pod_sandbox_id
    ...
    node.stop()      # removes every pod, the daemon, shims, mounts, cgroups, files
"""
import importlib
import json
import os
import shutil
import subprocess
import sys
import time

from engines import procs
from engines.netns_sandbox import Sandbox
from engines.oci_image import build_oci_archive

NAMESPACE = "k8s.io"  # the CRI plugin's containerd namespace
PAUSE_IMAGE = "localhost/pyrunc-pause:latest"
BUSYBOX_IMAGE = "localhost/pyrunc-busybox:latest"
PROTO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cri_subset.proto")

CONFIG = """\
version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = ""
[plugins."io.containerd.gc.v1.scheduler"]
  startup_delay = "100ms"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  # containerd's -998 for sandboxes needs CAP_SYS_RESOURCE, which this
  # machine's root lacks: clamp to what the daemon may set.
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_cdi = false
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "{base}/cni-bin"
  conf_dir = "{base}/cni-conf"
[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "{default}"
{runtimes}
"""

RUNTIME = """\
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{name}.options]
  BinaryName = "{binary}"
  SystemdCgroup = {systemd}
"""

WRAPPER = """\
#!/bin/sh
printf '{name} %s\\n' "$*" >> {calls}
exec {binary} "$@"
"""


def compile_client(outdir):
    """(messages module, grpc module) for cri_subset.proto, built in outdir."""
    from grpc_tools import protoc

    os.makedirs(outdir, exist_ok=True)
    shutil.copy(PROTO, os.path.join(outdir, "cri_subset.proto"))
    inc = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    rc = protoc.main(["protoc", "-I", outdir, "-I", inc, "--python_out", outdir,
                      "--grpc_python_out", outdir, os.path.join(outdir, "cri_subset.proto")])
    if rc != 0:
        raise RuntimeError("protoc failed (%d) on %s" % (rc, PROTO))
    sys.path.insert(0, outdir)
    try:
        return importlib.import_module("cri_subset_pb2"), importlib.import_module("cri_subset_pb2_grpc")
    finally:
        sys.path.remove(outdir)


class CriNode:
    def __init__(self, base, runtimes, busybox, systemd_cgroup=False, default="runc", sandbox=True):
        self.base = str(base)
        self.runtimes = dict(runtimes)
        self.busybox = busybox
        self.systemd_cgroup = systemd_cgroup
        self.default = default
        self.sock = os.path.join(self.base, "containerd.sock")
        self.calls_log = os.path.join(self.base, "runtime-calls.log")
        self.log_path = os.path.join(self.base, "containerd.log")
        self.logs = os.path.join(self.base, "pod-logs")
        self.sandbox = Sandbox() if sandbox else None
        self.proc = None
        self.leftover_pids = []  # processes stop() found after the daemon and shims
        self.channel = None
        self.pb = self.stub = None

    # -- lifecycle -------------------------------------------------------------
    def start(self):
        for d in ("bin", "cni-bin", "cni-conf", "images", "gen", "pod-logs"):
            os.makedirs(os.path.join(self.base, d), exist_ok=True)
        self.pb, grpc_mod = compile_client(os.path.join(self.base, "gen"))
        config = os.path.join(self.base, "config.toml")
        with open(config, "w") as f:
            f.write(self.config_text())
        if self.sandbox is not None:
            self.sandbox.start()
        argv = ["containerd", "--config", config]
        if self.sandbox is not None:
            argv = self.sandbox.wrap(argv)
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         cwd=self.base, start_new_session=True)
        self._wait_ready()
        for name, cmd in ((PAUSE_IMAGE, ("sleep", "2147483647")), (BUSYBOX_IMAGE, ("sh",))):
            archive = os.path.join(self.base, "images", name.split("/")[1].split(":")[0] + ".tar")
            build_oci_archive(archive, self.busybox, name, cmd)
            self.ctr("images", "import", archive)
        import grpc

        self.channel = grpc.insecure_channel("unix://" + self.sock)
        self.stub = grpc_mod.RuntimeServiceStub(self.channel)

    def config_text(self):
        runtimes = ""
        for name, binary in sorted(self.runtimes.items()):
            wrapper = os.path.join(self.base, "bin", name)
            with open(wrapper, "w") as f:
                f.write(WRAPPER.format(name=name, calls=self.calls_log, binary=binary))
            os.chmod(wrapper, 0o755)
            runtimes += RUNTIME.format(name=name, binary=wrapper,
                                       systemd="true" if self.systemd_cgroup else "false")
        return CONFIG.format(root=os.path.join(self.base, "root"), state=os.path.join(self.base, "state"),
                             sock=self.sock, pause=PAUSE_IMAGE, base=self.base, default=self.default,
                             runtimes=runtimes)

    def _wait_ready(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("containerd exited %d: %s" % (self.proc.returncode, self.log_tail()))
            if os.path.exists(self.sock) and self.ctr("version", check=False).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("containerd not ready after 30 s: " + self.log_tail())

    def stop(self):
        """Every pod stopped and removed through CRI, then the daemon, its
        shims, mounts and files; the namespaces go with the holder."""
        if self.stub is not None and self.proc is not None and self.proc.poll() is None:
            for pod in self.pod_ids():
                self.rpc("StopPodSandbox", pod_sandbox_id=pod, check=False)
                self.rpc("RemovePodSandbox", pod_sandbox_id=pod, check=False)
        if self.channel is not None:
            self.channel.close()
        if self.proc is not None:
            procs.end([self.proc.pid])
            self.proc.wait(timeout=10)
        procs.end(procs.pids_with_args(b"-address", self.sock.encode()))
        if self.sandbox is not None and self.sandbox.proc is not None:
            # A pod whose removal failed outlives its shim (pause reparented
            # to init): every pod here runs in the sandbox's network
            # namespace, so whatever is left there besides the holder is ours.
            net = self.sandbox.net_inode()
            self.leftover_pids = [pid for pid in procs.in_net_namespace(net) if pid != self.sandbox.pid]
            procs.end(self.leftover_pids, grace=2.0)
            for point in self.sandbox.mounts_under(self.base):
                self.sandbox.run("umount", "-l", point, check=False)
            self.sandbox.stop()
        for point in procs.mounts_under(self.base):
            subprocess.run(["umount", "-l", point], check=False)
        shutil.rmtree(self.base, ignore_errors=True)

    def log_tail(self, n=4000):
        try:
            with open(self.log_path) as f:
                return f.read()[-n:]
        except OSError:
            return ""

    # -- talking to it -----------------------------------------------------------
    def ctr(self, *args, check=True, timeout=60):
        p = subprocess.run(["ctr", "--address", self.sock, "--namespace", NAMESPACE, *args],
                           capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError("ctr %s failed (%d): %s%s\n%s" % (" ".join(args), p.returncode, p.stdout,
                                                                  p.stderr, self.log_tail()))
        return p

    def rpc(self, method, check=True, deadline_s=60, **fields):
        """One CRI call; the request message is built from keyword fields
        (`timeout` is a request field: StopContainer's grace period)."""
        import grpc

        desc = self.pb.DESCRIPTOR.services_by_name["RuntimeService"].methods_by_name[method]
        request_type = getattr(self.pb, desc.input_type.name)
        try:
            return getattr(self.stub, method)(request_type(**fields), timeout=deadline_s)
        except grpc.RpcError as e:
            if check:
                raise AssertionError("CRI %s failed: %s: %s\ncontainerd log:\n%s"
                                     % (method, e.code(), e.details(), self.log_tail())) from None
            return e

    def pod_ids(self):
        out = self.ctr("containers", "list", "--quiet", check=False).stdout.split()
        ids = []
        for cid in out:
            info = self.ctr("containers", "info", cid, check=False).stdout
            try:
                labels = json.loads(info).get("Labels") or {}
            except ValueError:
                continue
            if labels.get("io.cri-containerd.kind") == "sandbox":
                ids.append(cid)
        return ids

    def runtime_calls(self):
        try:
            with open(self.calls_log) as f:
                return [line.split() for line in f if line.strip()]
        except OSError:
            return []

    def handlers_called(self, cid):
        """The handlers whose binary containerd called with `cid` in the argv."""
        return {argv[0] for argv in self.runtime_calls() if cid in argv}

    def verbs_called(self, cid):
        """The runtime verbs called for `cid`, in order."""
        verbs = []
        for argv in self.runtime_calls():
            if cid in argv:
                words = [w for w in argv[1:] if not w.startswith("-")]
                # the global flags' values (--root R --log F --log-format json)
                skip = {argv[i + 1] for i, w in enumerate(argv[:-1]) if w in ("--root", "--log", "--log-format")}
                verbs.append(next(w for w in words if w not in skip))
        return verbs

    # -- the node's view (the sandbox's namespaces, or ours) ---------------------------
    def net_inode(self):
        if self.sandbox is not None:
            return self.sandbox.net_inode()
        return os.stat("/proc/self/ns/net").st_ino

    def in_ns(self, *argv, check=True):
        if self.sandbox is not None:
            return self.sandbox.run(*argv, check=check)
        p = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError("%s failed (%d): %s" % (" ".join(argv), p.returncode, p.stderr))
        return p

    def exists(self, path):
        return self.in_ns("test", "-e", path, check=False).returncode == 0

    def mounts_under(self, prefix):
        if self.sandbox is not None:
            return self.sandbox.mounts_under(prefix)
        return procs.mounts_under(prefix)

    # -- request builders ------------------------------------------------------------
    def pod_config(self, name, cgroup_parent, uid=None):
        pb = self.pb
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uid or name + "-uid", namespace="default"),
            log_directory=os.path.join(self.logs, name),
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=cgroup_parent,
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=pb.NamespaceOption(network=pb.NODE, pid=pb.POD, ipc=pb.POD))))

    def container_config(self, name, args, mounts=(), resources=None, pid_mode=None):
        pb = self.pb
        ns = pb.NamespaceOption(network=pb.NODE, pid=pid_mode if pid_mode is not None else pb.POD,
                                ipc=pb.POD)
        return pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image=BUSYBOX_IMAGE),
            command=list(args), log_path=name + ".log", mounts=list(mounts),
            linux=pb.LinuxContainerConfig(
                resources=resources or pb.LinuxContainerResources(),
                security_context=pb.LinuxContainerSecurityContext(namespace_options=ns)))

    def info_pid(self, response):
        """The pid containerd's verbose status reports (sandbox or container)."""
        return json.loads(response.info["info"])["pid"]
