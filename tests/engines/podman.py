"""podman + conmon with pyrunc as the runtime, in a private store.

containers.conf and storage.conf are written under the test's temp dir and
passed through CONTAINERS_CONF / CONTAINERS_STORAGE_CONF, so nothing in
/etc/containers or /var/lib/containers/storage is read or written. The
runtime is a `pyrunc` wrapper (logging its argv, then exec'ing the real
launcher): podman passes `--log-format=json --log FILE` only to runtimes
whose basename is in runtime_supports_json, so the name matters.

With a `sandbox` (engines.netns_sandbox) every podman call runs inside the
test's network and mount namespaces: the networks it creates (bridges,
veths, CNI state and firewall rules) exist only there.
"""
import os
import shutil
import subprocess

from engines import procs

CONTAINERS_CONF = """\
[containers]
# podman's default nofile (1048576) is above this host's hard limit.
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "none"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{base}/events.log"
lock_type = "file"
tmp_dir = "{base}/tmp"
runtime_supports_json = ["crun", "runc", "kata", "runsc", "krun", "pyrunc"]

[network]
# Debian 12's podman 4.3 networks through CNI (containernetworking-plugins);
# networks the tests create are written here, never to /etc/cni/net.d.
network_backend = "cni"
network_config_dir = "{base}/net"
cni_plugin_dirs = ["/usr/lib/cni"]
"""

STORAGE_CONF = """\
[storage]
driver = "overlay"
graphroot = "{base}/root"
runroot = "{base}/runroot"
"""

WRAPPER = """\
#!/bin/sh
printf '%s\\n' "$*" >> {calls}
exec {runtime} "$@"
"""


class Podman:
    def __init__(self, base, runtime, image_archive, image_name, cgroup_parent, sandbox=None):
        self.base = str(base)
        self.sandbox = sandbox
        self.image_archive = image_archive
        self.image = image_name
        self.cgroup_parent = cgroup_parent
        self.calls_log = os.path.join(self.base, "runtime-calls.log")
        self.runtime = os.path.join(self.base, "bin", "pyrunc")
        self.real_runtime = runtime
        self.env = dict(os.environ,
                        CONTAINERS_CONF=os.path.join(self.base, "containers.conf"),
                        CONTAINERS_STORAGE_CONF=os.path.join(self.base, "storage.conf"),
                        CONTAINERS_REGISTRIES_CONF=os.path.join(self.base, "registries.conf"))

    def start(self):
        for d in ("bin", "tmp", "net"):
            os.makedirs(os.path.join(self.base, d), exist_ok=True)
        files = {"containers.conf": CONTAINERS_CONF.format(base=self.base),
                 "storage.conf": STORAGE_CONF.format(base=self.base),
                 "registries.conf": "unqualified-search-registries = []\n",
                 "bin/pyrunc": WRAPPER.format(calls=self.calls_log, runtime=self.real_runtime)}
        for name, text in files.items():
            with open(os.path.join(self.base, name), "w") as f:
                f.write(text)
        os.chmod(self.runtime, 0o755)
        self.podman("load", "--input", self.image_archive)

    def stop(self):
        self.podman("rm", "--all", "--force", "--time", "0", check=False)
        self.podman("rmi", "--all", "--force", check=False)
        for net in self.networks():
            if net != "podman":  # the built-in default, never written to our config dir
                self.podman("network", "rm", "--force", net, check=False)
        # conmon outlives podman by design; these are ours (our runroot).
        procs.end([pid for pid in procs.pids_with_args(b"conmon") if self._is_ours(pid)])
        self.delete_runtime_leftovers()
        for point in self.mounts():
            subprocess.run(self._wrap(["umount", "-l", point]), check=False)
        for path in procs.cgroup_dirs(self.cgroup_parent):
            procs.remove_cgroup_tree(path)
        shutil.rmtree(self.base, ignore_errors=True)

    def stop_and_check(self):
        """stop(), then fail if anything of this store is left: runtime
        state, conmon, mounts, cgroups."""
        self.stop()
        assert self.runtime_leftovers() == []
        assert [p for p in procs.pids_with_args(b"conmon") if self._is_ours(p)] == []
        assert procs.mounts_under(self.base) == []
        assert procs.cgroup_dirs(self.cgroup_parent) == []

    def delete_runtime_leftovers(self):
        """podman passes no --root: the runtime keeps its state in its
        default root.  A container podman lost track of (a failed restore)
        is not removed by `rm --all`; the runtime still knows it by its
        bundle, which is in this store."""
        for cid in self.runtime_leftovers():
            subprocess.run(self._wrap([self.real_runtime, "delete", "--force", cid]),
                           capture_output=True, check=False, stdin=subprocess.DEVNULL)

    def runtime_leftovers(self):
        """Ids in the runtime's default root whose bundle is in this store."""
        import json

        p = subprocess.run(self._wrap([self.real_runtime, "list", "--format", "json"]),
                           capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
        try:
            listed = json.loads(p.stdout or "null") or []
        except ValueError:
            return []
        return [c["id"] for c in listed
                if isinstance(c, dict) and str(c.get("bundle", "")).startswith(self.base + "/")]

    def _is_ours(self, pid):
        return any(self.base.encode() in arg for arg in procs.cmdline(pid))

    def _wrap(self, argv):
        return self.sandbox.wrap(argv) if self.sandbox is not None else argv

    def mounts(self):
        """Mounts under the store, where podman makes them (the sandbox's mount ns)."""
        if self.sandbox is not None:
            return self.sandbox.mounts_under(self.base)
        return procs.mounts_under(self.base)

    def argv(self, *args):
        # The store flags repeat storage.conf: without them a call that lost
        # the environment would use (and create) the machine's default store.
        return self._wrap(["podman", "--runtime", self.runtime, "--cgroup-manager", "cgroupfs",
                "--root", os.path.join(self.base, "root"), "--runroot", os.path.join(self.base, "runroot"),
                "--tmpdir", os.path.join(self.base, "tmp"), *args])

    def podman(self, *args, check=True, timeout=60):
        p = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout,
                           env=self.env, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError("podman %s failed (%d): %s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def run_args(self):
        """Flags every test container gets: no network, never a registry, our cgroup parent."""
        return ["--network", "none", "--pull", "never", "--cgroup-parent", self.cgroup_parent]

    def runtime_calls(self):
        try:
            with open(self.calls_log) as f:
                return [line.split() for line in f if line.strip()]
        except OSError:
            return []

    def networks(self):
        return self.podman("network", "ls", "--format", "{{.Name}}", check=False).stdout.split()

    def inspect(self, name, fmt):
        return self.podman("inspect", name, "--format", fmt).stdout.strip()
