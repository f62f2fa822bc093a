"""The tutorials' story end to end, with pyrunc as the runtime of buildah
and podman: build an image with RUN layers, list it, run it as a server on
a bridge network, `ps`, reach the server at the container's own IP, exec
into it and see the listening port, compare its namespaces with the host's
(lsns), then remove everything and check that nothing is left.

Each step checks what it shows (ScenarioError when it is wrong). The test
(tests/integration/test_tutorial_scenario.py) runs it quietly and asserts on
the facts it returns; `make demo-engines` runs it as a narrated demo:

    cd tests && python -m engines.scenario --runtime /path/to/pyrunc

Where it runs: a private store under a temp dir, networking inside a
network namespace the scenario makes (engines.netns_sandbox), containers'
cgroups under one parent the scenario names and removes. No network access
beyond that namespace, no registry.
"""
import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

from engines import procs
from engines.buildah import Buildah
from engines.netns_sandbox import Sandbox, host_network_snapshot
from engines.oci_image import build_oci_archive
from engines.podman import Podman

BASE_IMAGE = "localhost/pyrunc-busybox:latest"
IMAGE = "localhost/tutorial-web:1"
NETWORK = "tutorial-net"
SUBNET_PREFIX = "10.231.7."
SERVER = "tutorial-web"
PORT = 8080
# The namespaces a container gets of its own (podman's defaults on cgroup v1:
# the user, cgroup and time namespaces stay the host's).
OWN_NAMESPACES = ("mnt", "uts", "ipc", "pid", "net")

CONTAINERFILE = """\
FROM {base}
RUN mkdir -p /www && echo 'hello from a pyrunc container' > /www/index.html
RUN test -f /www/index.html && echo "built by buildah, layer 2, on $(uname -s)" >> /www/index.html
RUN wc -l < /www/index.html > /www/lines && test "$(cat /www/lines)" = 2
EXPOSE {port}
CMD ["httpd", "-f", "-p", "{port}", "-h", "/www"]
"""

RUNTIME_VERBS = {"create", "start", "state", "exec", "kill", "delete", "pause", "resume", "update", "ps"}
TOOLS = {"podman": "podman", "conmon": "conmon", "buildah": "buildah", "nsenter": "util-linux",
         "unshare": "util-linux", "lsns": "util-linux", "ip": "iproute2", "nft": "nftables"}


class ScenarioError(AssertionError):
    pass


def expect(condition, message):
    if not condition:
        raise ScenarioError(message)


def static_busybox():
    path = shutil.which("busybox")
    if path is None:
        return None
    with open(path, "rb") as f:
        head = f.read(4096)
    return None if (b"ld-linux" in head or b"/lib64/ld" in head) else path


def missing():
    """Why the scenario cannot run here (empty when it can)."""
    reasons = ["%s not installed (apt-get install %s)" % (t, pkg) for t, pkg in TOOLS.items()
               if shutil.which(t) is None]
    if not os.path.exists("/usr/lib/cni/bridge"):
        reasons.append("no CNI bridge plugin at /usr/lib/cni/bridge (apt-get install containernetworking-plugins)")
    if static_busybox() is None:
        reasons.append("no static busybox for the image (apt-get install busybox-static)")
    if os.geteuid() != 0:
        reasons.append("needs root (the engines run real containers)")
    return reasons


def lsns(pid):
    """{type: inode} of pid's namespaces, as lsns reports them."""
    out = subprocess.run(["lsns", "--json", "--output", "NS,TYPE", "--task", str(pid)],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    return {row["type"]: int(row["ns"]) for row in json.loads(out)["namespaces"]}


class Scenario:
    def __init__(self, runtime, cgroup_parent, narrate=False):
        self.runtime = runtime
        self.cgroup_parent = cgroup_parent
        self.narrate = narrate
        self.facts = {}
        self.sandbox = None
        self.pm = None
        self.bd = None
        self.workdir = None

    # -- narration ----------------------------------------------------------
    def step(self, title):
        if self.narrate:
            print("\n==> %s" % title, flush=True)

    def show(self, command, output=""):
        if self.narrate:
            print("$ %s" % command)
            for line in output.rstrip("\n").splitlines():
                print("    " + line)
            sys.stdout.flush()

    def note(self, text):
        if self.narrate:
            print("    # " + text, flush=True)

    def podman(self, *args, check=True):
        p = self.pm.podman(*args, check=check)
        self.show(shlex.join(["podman", *args]), p.stdout + (p.stderr if p.returncode else ""))
        return p

    # -- the story ------------------------------------------------------------
    def run(self):
        """Run every step; returns the facts observed. Cleans up (and checks
        the cleanup) whether a step failed or not."""
        self.facts["host_network_before"] = host_network_snapshot()
        try:
            self._setup()
            self._build()
            self._images()
            self._serve()
            self._ps()
            self._reach()
            self._exec_netstat()
            self._namespaces()
        finally:
            self._teardown()
        self._check_nothing_left()
        return self.facts

    def _setup(self):
        self.step("Setup: a private store, and a network namespace for the engines' networking")
        self.workdir = tempfile.mkdtemp(prefix="pyrunc-tut-", dir="/tmp")
        archive = os.path.join(self.workdir, "busybox-oci.tar")
        build_oci_archive(archive, static_busybox(), BASE_IMAGE)
        self.sandbox = Sandbox()
        self.sandbox.start()
        self.pm = Podman(os.path.join(self.workdir, "store"), self.runtime, archive, BASE_IMAGE,
                         self.cgroup_parent, sandbox=self.sandbox)
        self.bd = Buildah(self.pm, self.cgroup_parent + "/buildah")
        os.makedirs(self.pm.base)
        self.pm.start()
        self.note("every podman/buildah call below runs with --runtime %s (logs its argv, execs %s),"
                  % (self.pm.runtime, self.runtime))
        self.note("--root/--runroot under %s, inside network namespace net:[%d] (holder pid %d)"
                  % (self.pm.base, self.sandbox.net_inode(), self.sandbox.pid))
        self.note("base image %s: busybox-static packed as an OCI image here, no registry" % BASE_IMAGE)

    def _build(self):
        self.step("1. Build an image: buildah bud, every RUN step a container run by pyrunc")
        context = os.path.join(self.workdir, "context")
        os.makedirs(context)
        with open(os.path.join(context, "Containerfile"), "w") as f:
            f.write(CONTAINERFILE.format(base=BASE_IMAGE, port=PORT))
        self.show("cat Containerfile", CONTAINERFILE.format(base=BASE_IMAGE, port=PORT))
        calls_before = len(self.pm.runtime_calls())
        p = self.bd.bud(context, IMAGE, "--layers", check=False)
        self.show("buildah bud --layers --isolation oci --network none --pull=never -t %s ." % IMAGE,
                  p.stdout + (p.stderr if p.returncode else ""))
        expect(p.returncode == 0, "buildah bud failed (%d): %s" % (p.returncode, p.stderr))
        creates = [a for a in self.pm.runtime_calls()[calls_before:] if a and a[0] == "create"]
        self.facts["build_runtime_creates"] = len(creates)
        expect(len(creates) == 3, "expected one pyrunc create per RUN step (3), saw %d" % len(creates))
        self.note("pyrunc ran %d RUN containers (create/start/state/delete each)" % len(creates))
        layers = int(self.pm.inspect(IMAGE, "{{len .RootFS.Layers}}"))
        self.show("podman image inspect --format '{{len .RootFS.Layers}}' " + IMAGE, str(layers))
        self.facts["layers"] = layers
        expect(layers == 4, "expected the base layer plus one per RUN step (4), image has %d" % layers)

    def _images(self):
        self.step("2. List images")
        p = self.bd.buildah("images")
        self.show("buildah images", p.stdout)
        names = self.bd.images()
        self.facts["images"] = names
        expect(IMAGE in names and BASE_IMAGE in names, "buildah images lists %s" % names)
        p = self.podman("image", "history", "--format", "{{.ID}} {{.Size}} {{.CreatedBy}}", IMAGE)
        runs = [line for line in p.stdout.splitlines() if "/bin/sh -c " in line and "#(nop)" not in line]
        self.facts["history_runs"] = len(runs)
        expect(len(runs) == 3, "image history shows %d RUN steps: %s" % (len(runs), p.stdout))

    def _serve(self):
        self.step("3. Run a server container on a bridge network (its own IP)")
        self.podman("network", "create", "--subnet", SUBNET_PREFIX + "0/24", NETWORK)
        self.podman("run", "-d", "--name", SERVER, "--network", NETWORK, "--pull", "never",
                    "--cgroup-parent", self.cgroup_parent, IMAGE)
        self.facts["ip"] = ip = self.pm.inspect(SERVER, '{{(index .NetworkSettings.Networks "%s").IPAddress}}'
                                                % NETWORK)
        self.facts["pid"] = int(self.pm.inspect(SERVER, "{{.State.Pid}}"))
        self.show("podman inspect --format '{{...IPAddress}}' " + SERVER, ip)
        expect(ip.startswith(SUBNET_PREFIX) and ip != SUBNET_PREFIX + "1", "container IP %r" % ip)
        addr = self.podman("exec", SERVER, "ip", "-4", "addr", "show", "eth0").stdout
        expect("inet %s/24 " % ip in addr, "eth0 in the container lacks %s: %s" % (ip, addr))
        bridges = [n for n, kind in self.sandbox.links().items() if kind == "bridge"]
        self.facts["bridges"] = bridges
        expect(len(bridges) == 1, "one bridge in the scenario's namespace, found %s" % bridges)
        self.note("bridge %s exists only in the scenario's network namespace" % bridges[0])

    def _ps(self):
        self.step("4. podman ps")
        p = self.podman("ps", "--format", "{{.Names}} {{.Image}} {{.Status}}")
        rows = [line.split() for line in p.stdout.splitlines()]
        self.facts["ps"] = rows
        expect(any(r[:2] == [SERVER, IMAGE] and r[2] == "Up" for r in rows), "podman ps: %s" % p.stdout)

    def _reach(self):
        self.step("5. Reach the server at the container's IP (from the scenario's network namespace)")
        url = "http://%s:%d/" % (self.facts["ip"], PORT)
        busybox = static_busybox()
        for _ in range(50):  # httpd may still be starting
            p = self.sandbox.run(busybox, "wget", "-q", "-O", "-", url, net_only=True, check=False, timeout=20)
            if p.returncode == 0:
                break
            time.sleep(0.1)
        self.show("wget -q -O - " + url, p.stdout or p.stderr)
        self.facts["served"] = p.stdout
        expect(p.returncode == 0, "wget %s: %s" % (url, p.stderr))
        expect(p.stdout.splitlines() == ["hello from a pyrunc container", "built by buildah, layer 2, on Linux"],
               "served page: %r" % p.stdout)

    def _exec_netstat(self):
        self.step("6. exec into the container: the listening port")
        p = self.podman("exec", SERVER, "netstat", "-lnt")
        listening = [line.split()[3] for line in p.stdout.splitlines()
                     if line.startswith("tcp") and line.split()[-1] == "LISTEN"]
        self.facts["listening"] = listening
        expect(any(a.rsplit(":", 1)[-1] == str(PORT) for a in listening), "netstat -lnt: %s" % p.stdout)

    def _namespaces(self):
        self.step("7. lsns: the container's namespaces against the host's")
        pid = self.facts["pid"]
        expect(procs.cmdline(pid)[:1] == [b"httpd"], "pid %d is not the server: %s" % (pid, procs.cmdline(pid)))
        ctr, host = lsns(pid), lsns(os.getpid())
        for kind, ino in list(ctr.items()) + list(host.items()):
            owner = pid if (kind, ino) in ctr.items() else os.getpid()
            expect(os.stat("/proc/%d/ns/%s" % (owner, kind)).st_ino == ino,
                   "lsns disagrees with /proc/%d/ns/%s" % (owner, kind))
        self.show("lsns --output NS,TYPE --task %d   (container init)  vs  --task %d (this process, on the host)"
                  % (pid, os.getpid()),
                  "\n".join("%-6s container %-11s host %-11s %s" % (k, ctr.get(k), host.get(k),
                                                                  "differs" if ctr.get(k) != host.get(k) else "shared")
                            for k in sorted(host)))
        self.facts["own_namespaces"] = sorted(k for k in host if ctr.get(k) != host[k])
        for kind in OWN_NAMESPACES:
            expect(ctr[kind] != host[kind], "the container shares the host's %s namespace" % kind)
        expect(ctr["net"] != self.sandbox.net_inode(), "the container shares the scenario's network namespace")

    # -- cleanup ----------------------------------------------------------------
    def _teardown(self):
        self.step("Cleanup: remove the container, the network, the images, the store")
        if self.pm is not None:
            self.podman("rm", "--force", "--time", "0", "--all", check=False)
            left = self.pm.podman("ps", "--all", "--quiet", check=False).stdout.split()
            self.facts["containers_left"] = left
            self.podman("network", "rm", "--force", NETWORK, check=False)
            self.podman("rmi", "--all", "--force", check=False)
            self.facts["images_left"] = self.pm.podman("images", "--quiet", check=False).stdout.split()
            self.facts["runtime_left"] = self.sandbox.run(self.runtime, "list", "--quiet", check=False).stdout.split()
            self.facts["runtime_verbs"] = sorted({verb for argv in self.pm.runtime_calls()
                                                  for verb in argv[:4] if verb in RUNTIME_VERBS})
            self.pm.stop()
        if self.sandbox is not None:
            self.sandbox.stop()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _check_nothing_left(self):
        leftovers = {}
        if self.facts.get("containers_left"):
            leftovers["containers"] = self.facts["containers_left"]
        if self.facts.get("images_left"):
            leftovers["images"] = self.facts["images_left"]
        if self.facts.get("runtime_left"):
            leftovers["runtime containers"] = self.facts["runtime_left"]
        if self.workdir is not None and os.path.exists(self.workdir):
            leftovers["store"] = self.workdir
        if self.pm is not None:
            conmons = [p for p in procs.pids_with_args(b"conmon") if self.pm._is_ours(p)]
            if conmons:
                leftovers["conmon"] = conmons
        cgroups = procs.cgroup_dirs(self.cgroup_parent)
        if cgroups:
            leftovers["cgroups"] = cgroups
        if self.sandbox is not None and self.sandbox.proc.poll() is None:
            leftovers["sandbox holder"] = self.sandbox.pid
        after = host_network_snapshot()
        for key, value in after.items():
            if value != self.facts["host_network_before"][key]:
                leftovers["host " + key] = value
        self.facts["leftovers"] = leftovers
        self.step("Check: nothing left behind")
        self.note("containers: %s, images: %s, store dir: %s, cgroups under %s: %s"
                  % (len(self.facts.get("containers_left", [])), len(self.facts.get("images_left", [])),
                     "removed" if "store" not in leftovers else "LEFT", self.cgroup_parent,
                     "none" if not cgroups else cgroups))
        self.note("host links/addresses/routes/nftables: %s" % (
            "unchanged" if not any(k.startswith("host ") for k in leftovers) else "CHANGED"))
        expect(not leftovers, "left behind: %s" % leftovers)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtime", required=True, help="the pyrunc launcher the engines run")
    parser.add_argument("--cgroup-parent", default="/pyrunc-demo-engines")
    args = parser.parse_args(argv)
    reasons = missing()
    if reasons:
        print("demo-engines cannot run here:\n  " + "\n  ".join(reasons), file=sys.stderr)
        return 2
    try:
        facts = Scenario(os.path.abspath(args.runtime), args.cgroup_parent, narrate=True).run()
    except ScenarioError as e:
        print("\nFAILED: %s" % e, file=sys.stderr)
        return 1
    print("\ndemo-engines done: pyrunc ran %s for buildah and podman; nothing left behind"
          % ", ".join(facts["runtime_verbs"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
