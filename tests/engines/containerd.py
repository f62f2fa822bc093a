"""A private containerd for the tests: its own root, state, socket and
config under a temp dir, never the machine's /run/containerd/containerd.sock.

containerd 1.6 has no daemon-wide runtime options for `ctr` (the config's
runtime `options.BinaryName` belongs to the CRI plugin, which ctr does not
go through): without `--runc-binary` the runc v2 shim runs `runc` from its
PATH. So the daemon gets a PATH whose first `runc` is a wrapper that logs
its argv and execs pyrunc: the default runtime is pyrunc, and the calls log
shows which runtime containerd really called.
"""
import os
import shutil
import subprocess
import time

from engines import procs

NAMESPACE_PREFIX = "pyrunc-engines-"
# Paths containerd 1.6 hard-codes (no config moves them); the tests remove
# only what they themselves made there.
RUNC_ROOT = "/run/containerd/runc"
SHIM_SOCKETS = "/run/containerd/s"
HOST_DIRS = ("/run/containerd", RUNC_ROOT, SHIM_SOCKETS, "/run/containerd/fifo")

CONFIG = """\
version = 2
root = "{root}"
state = "{state}"
# Not needed by ctr, and each would touch host paths (/opt/containerd, CNI).
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
# io.containerd.runtime.v1.linux stays loaded: the tasks service needs it.

[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = ""
[cgroup]
  path = ""
[plugins."io.containerd.gc.v1.scheduler"]
  startup_delay = "100ms"
# What a CRI client would use; kept for users who copy this config.
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  BinaryName = "{runtime}"
"""

WRAPPER = """\
#!/bin/sh
# containerd's default `runc`: log the argv, then become pyrunc.
printf '%s\\n' "$*" >> {calls}
exec {runtime} "$@"
"""


class Containerd:
    """Start with start(), talk to it with ctr(...), end with stop()."""

    def __init__(self, base, runtime, image_archive, image_name):
        self.base = str(base)
        self.runtime = runtime
        self.image_archive = image_archive
        self.image = image_name
        self.sock = os.path.join(self.base, "containerd.sock")
        self.fifo_dir = os.path.join(self.base, "fifo")
        self.calls_log = os.path.join(self.base, "runc-calls.log")
        self.log_path = os.path.join(self.base, "containerd.log")
        self.namespace = NAMESPACE_PREFIX + os.urandom(4).hex()
        self.proc = None
        self._host_dirs_before = {d for d in HOST_DIRS if os.path.isdir(d)}

    # -- lifecycle -------------------------------------------------------
    def start(self):
        bindir = os.path.join(self.base, "bin")
        for d in (bindir, self.fifo_dir):
            os.makedirs(d, exist_ok=True)
        wrapper = os.path.join(bindir, "runc")
        with open(wrapper, "w") as f:
            f.write(WRAPPER.format(calls=self.calls_log, runtime=self.runtime))
        os.chmod(wrapper, 0o755)
        config = os.path.join(self.base, "config.toml")
        with open(config, "w") as f:
            f.write(CONFIG.format(root=os.path.join(self.base, "root"), state=os.path.join(self.base, "state"),
                                  sock=self.sock, runtime=self.runtime))
        env = dict(os.environ, PATH=bindir + ":" + os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"))
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(["containerd", "--config", config], stdout=log, stderr=log,
                                         stdin=subprocess.DEVNULL, env=env, cwd=self.base,
                                         start_new_session=True)
        self._wait_ready()
        self.ctr("images", "import", self.image_archive)

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
        """Remove every task and container, stop the daemon and its shims,
        unmount and remove what it left."""
        if self.proc is not None and self.proc.poll() is None:
            for cid in self.container_ids():
                self.ctr("task", "kill", "-s", "SIGKILL", cid, check=False)
                self.ctr("task", "delete", "--force", cid, check=False)
                self.ctr("containers", "delete", cid, check=False)
        if self.proc is not None:
            procs.end([self.proc.pid])
            self.proc.wait(timeout=10)
        # A shim outlives its daemon by design; these are ours (our socket).
        procs.end(procs.pids_with_args(b"-address", self.sock.encode()))
        for point in procs.mounts_under(self.base):
            subprocess.run(["umount", "-l", point], check=False)
        for path in procs.cgroup_dirs(self.namespace):
            procs.remove_cgroup_tree(path)
        self._remove_host_dirs()
        shutil.rmtree(self.base, ignore_errors=True)

    def _remove_host_dirs(self):
        shutil.rmtree(os.path.join(RUNC_ROOT, self.namespace), ignore_errors=True)
        for d in sorted(set(HOST_DIRS) - self._host_dirs_before, key=len, reverse=True):
            try:
                os.rmdir(d)  # only when empty: somebody else may use it now
            except OSError:
                pass

    def log_tail(self, n=4000):
        try:
            with open(self.log_path) as f:
                return f.read()[-n:]
        except OSError:
            return ""

    # -- ctr -------------------------------------------------------------
    def ctr_argv(self, *args):
        return ["ctr", "--address", self.sock, "--namespace", self.namespace, *args]

    def ctr(self, *args, check=True, timeout=60, input=None):
        p = subprocess.run(self.ctr_argv(*args), capture_output=True, text=True, timeout=timeout,
                           input=input, stdin=None if input is not None else subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError("ctr %s failed (%d): %s%s\ncontainerd log:\n%s"
                                 % (" ".join(args), p.returncode, p.stdout, p.stderr, self.log_tail()))
        return p

    def container_ids(self):
        out = self.ctr("containers", "list", "--quiet", check=False).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def tasks(self):
        """{id: (pid, status)} from `ctr task ls`."""
        rows = self.ctr("task", "ls").stdout.splitlines()[1:]
        return {r.split()[0]: (int(r.split()[1]), r.split()[2]) for r in rows if r.strip()}

    def runtime_calls(self):
        try:
            with open(self.calls_log) as f:
                return [line.split() for line in f if line.strip()]
        except OSError:
            return []

    def bundle(self, cid):
        return os.path.join(self.base, "state", "io.containerd.runtime.v2.task", self.namespace, cid)
