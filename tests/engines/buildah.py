"""buildah with pyrunc as the runtime of its RUN steps, in a podman's store.

Buildah shares the Podman helper's private store, configuration files and
logging runtime wrapper, so the image it builds is the one podman runs and
the calls log shows every runtime call of a build. Per RUN step buildah
1.28 (isolation oci) calls create, start, state and delete.

Flags that keep a build off the machine's state:
- `--pull=never`: the base image is in the store already; no registry.
- `--network none`: a RUN step gets a bare network namespace, so buildah
  never sets up CNI (its default would make a bridge in the caller's
  network namespace); CNI config and plugin dirs point at the test's anyway.
- `--cgroup-parent`: without it buildah gives an empty cgroupsPath and the
  runtime makes the cgroup below the caller's own cgroup.
- TMPDIR: where buildah makes each step's bundle (default /var/tmp).
"""
import os
import subprocess


class Buildah:
    def __init__(self, podman, cgroup_parent):
        self.pm = podman
        self.cgroup_parent = cgroup_parent
        self.tmpdir = os.path.join(podman.base, "buildah-tmp")
        self.env = dict(podman.env, TMPDIR=self.tmpdir)

    def argv(self, *args):
        base = self.pm.base
        argv = ["buildah", "--root", os.path.join(base, "root"), "--runroot", os.path.join(base, "runroot"),
                "--storage-driver", "overlay", *args]
        return self.pm.sandbox.wrap(argv) if self.pm.sandbox is not None else argv

    def buildah(self, *args, check=True, timeout=120):
        os.makedirs(self.tmpdir, exist_ok=True)
        p = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout,
                           env=self.env, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise AssertionError("buildah %s failed (%d): %s%s" % (" ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def bud_args(self):
        """The flags every test build gets (see the module's docstring)."""
        return ["--runtime", self.pm.runtime, "--isolation", "oci", "--pull=never", "--network", "none",
                "--cgroup-parent", self.cgroup_parent,
                "--cni-config-dir", os.path.join(self.pm.base, "net"), "--cni-plugin-path", "/usr/lib/cni"]

    def bud(self, context, tag, *extra, check=True):
        return self.buildah("bud", *self.bud_args(), *extra, "--tag", tag, context, check=check)

    def images(self):
        """Names (repository:tag) `buildah images` lists."""
        out = self.buildah("images", "--format", "{{.Name}}:{{.Tag}}").stdout
        return out.split()

    def containers(self):
        """Working containers buildah still holds."""
        return self.buildah("containers", "--quiet").stdout.split()
