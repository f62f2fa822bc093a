"""The call sequence a kubelet drives through CRI, each step checked from the
kernel (/proc, cgroup files, mount tables) or from inside the container.

Shared by tests/integration/test_engine_cri.py (host, cgroupfs driver),
the systemd node test (run inside the node with --systemd-cgroup) and
`make demo-k8s` (narrated).  A failed check raises AssertionError naming it.

    python -m engines.cri_flow [--systemd-cgroup] [--base DIR] HANDLER=BINARY...
"""
import json
import os
import subprocess
import sys
import time
import uuid

from engines import procs

CG = "/sys/fs/cgroup"
TRAP = "echo started; trap 'echo got TERM; exit 43' TERM; while true; do sleep 0.1; done"


def check(ok, what):
    if not ok:
        raise AssertionError(what)


class Layout:
    """Where the kernel shows a pod's cgroups: cgroup_parent/<id> for the
    cgroupfs driver; <expanded slice>/cri-containerd-<id>.scope for systemd."""

    def __init__(self, systemd, cgroupfs_root="/pyrunc-cri"):
        self.systemd = systemd
        self.cgroupfs_root = cgroupfs_root

    def new_parent(self):
        tag = uuid.uuid4().hex[:8]
        if self.systemd:
            return "pyrunctest-pod%s.slice" % tag
        return "%s/pod-%s" % (self.cgroupfs_root, tag)

    def path(self, parent, cid):
        if not self.systemd:
            return "%s/%s" % (parent, cid)
        base, prefix = "", ""
        for part in parent[:-len(".slice")].split("-"):
            base += "/" + prefix + part + ".slice"
            prefix += part + "-"
        return "%s/cri-containerd-%s.scope" % (base, cid)

    def dir(self, controller, parent, cid):
        return CG + "/" + controller + self.path(parent, cid)

    def leftovers(self, parent, cid):
        """Directories of the container's cgroup still there, any hierarchy."""
        rel = self.path(parent, cid)
        return [CG + "/" + c + rel for c in sorted(os.listdir(CG)) if os.path.isdir(CG + "/" + c + rel)]


def ns(pid, kind):
    return os.stat("/proc/%d/ns/%s" % (pid, kind)).st_ino


def cgroup_of(pid, controller="memory"):
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if controller in ctrls.split(","):
                return path
    return None


def read(path):
    with open(path) as f:
        return f.read().strip()


def gone(pid, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists("/proc/%d" % pid) or procs._zombie(pid):
            return True
        time.sleep(0.05)
    return False


def wait_for(fn, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return True
        time.sleep(0.05)
    return bool(fn())


def run_pod(cri, handler, name, parent):
    config = cri.pod_config(name, parent)
    pod = cri.rpc("RunPodSandbox", config=config, runtime_handler=handler).pod_sandbox_id
    return pod, config


def start_container(cri, pod, config, name, args, **kw):
    cid = cri.rpc("CreateContainer", pod_sandbox_id=pod, sandbox_config=config,
                  config=cri.container_config(name, args, **kw)).container_id
    cri.rpc("StartContainer", container_id=cid)
    status = cri.rpc("ContainerStatus", container_id=cid, verbose=True)
    return cid, status, cri.info_pid(status)


def unit_state(unit):
    out = subprocess.run(["systemctl", "show", unit, "-p", "ActiveState", "-p", "Delegate"],
                         capture_output=True, text=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def kubelet_flow(cri, handler, layout, say=lambda msg: None):
    """The whole life of a pod with two containers on `handler`."""
    pb = cri.pb
    name = "flow-" + handler
    parent = layout.new_parent()
    say("RunPodSandbox %s (handler %s, cgroup_parent %s)" % (name, handler, parent))
    pod, config = run_pod(cri, handler, name, parent)
    status = cri.rpc("PodSandboxStatus", pod_sandbox_id=pod, verbose=True)
    check(status.status.state == pb.SANDBOX_READY, "pod ready")
    check(status.status.runtime_handler == handler, "pod's handler")
    sandbox_pid = cri.info_pid(status)
    check(cgroup_of(sandbox_pid) == layout.path(parent, pod),
          "sandbox cgroup %s, want %s" % (cgroup_of(sandbox_pid), layout.path(parent, pod)))
    check(ns(sandbox_pid, "net") == cri.net_inode(), "host network: the node's netns")
    check(cri.handlers_called(pod) == {handler}, "runtime called for the pod: %s" % cri.handlers_called(pod))
    if layout.systemd:
        unit = "cri-containerd-%s.scope" % pod
        check(unit_state(unit) == {"ActiveState": "active", "Delegate": "yes"}, "pod scope %s" % unit_state(unit))
    say("  pause pid %d in %s" % (sandbox_pid, cgroup_of(sandbox_pid)))

    say("CreateContainer + StartContainer 'main' (a TERM trap)")
    cid, cstatus, pid = start_container(cri, pod, config, "main", ["sh", "-c", TRAP])
    check(cstatus.status.state == pb.CONTAINER_RUNNING, "main running")
    check(cgroup_of(pid) == layout.path(parent, cid), "main's cgroup %s" % cgroup_of(pid))
    for kind in ("pid", "ipc", "uts", "net"):
        check(ns(pid, kind) == ns(sandbox_pid, kind), "main shares the pod's %s namespace" % kind)
    check(ns(pid, "mnt") != ns(sandbox_pid, "mnt"), "main has its own mount namespace")
    check(cri.handlers_called(cid) == {handler}, "runtime called for main")
    check(cri.verbs_called(cid)[:2] == ["create", "start"], "verbs %s" % cri.verbs_called(cid))
    say("  main pid %d, pod namespaces shared, cgroup %s" % (pid, cgroup_of(pid)))

    r = cri.rpc("ExecSync", container_id=cid, cmd=["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=20)
    check((r.stdout, r.stderr, r.exit_code) == (b"out\n", b"err\n", 3), "ExecSync %r" % (r,))
    r = cri.rpc("ExecSync", container_id=cid, cmd=["cat", "/proc/1/cmdline"], timeout=20)
    check(r.stdout.split(b"\0")[:2] == [b"sleep", b"2147483647"], "pause is pid 1 of the pod: %r" % r.stdout)
    say("ExecSync: stdout 'out', stderr 'err', exit code 3; pid 1 is the pause process")

    log = os.path.join(cri.logs, name, "main.log")
    check(wait_for(lambda: os.path.exists(log) and "stdout F started" in read(log)), "log file %s" % log)
    say("log file %s: %s" % (log, read(log).splitlines()[0]))

    stats = cri.rpc("ContainerStats", container_id=cid).stats
    check(stats.attributes.id == cid and stats.memory.usage_bytes.value > 0, "memory stats")
    check(stats.cpu.usage_core_nano_seconds.value > 0, "cpu stats")
    say("ContainerStats: memory %d bytes, cpu %d ns" % (stats.memory.usage_bytes.value,
                                                       stats.cpu.usage_core_nano_seconds.value))

    cri.rpc("UpdateContainerResources", container_id=cid,
            linux=pb.LinuxContainerResources(memory_limit_in_bytes=96 << 20, cpu_shares=300,
                                             cpu_period=100000, cpu_quota=50000))
    limit = read(layout.dir("memory", parent, cid) + "/memory.limit_in_bytes")
    check(limit == str(96 << 20), "memory.limit_in_bytes %s" % limit)
    check(read(layout.dir("cpu", parent, cid) + "/cpu.shares") == "300", "cpu.shares")
    check(read(layout.dir("cpu", parent, cid) + "/cpu.cfs_quota_us") == "50000", "cpu.cfs_quota_us")
    say("UpdateContainerResources: memory.limit_in_bytes %s, cpu.shares 300, quota 50000" % limit)

    say("CreateContainer + StartContainer 'side' in the same pod")
    cid2, _, pid2 = start_container(cri, pod, config, "side", ["sleep", "1000"])
    for kind in ("pid", "ipc", "uts", "net"):
        check(ns(pid2, kind) == ns(pid, kind), "side shares main's %s namespace" % kind)
    r = cri.rpc("ExecSync", container_id=cid2, cmd=["ps", "-o", "args"], timeout=20)
    check(b"sh -c" in r.stdout, "side sees main's processes: %r" % r.stdout)

    say("StopContainer main (grace period 20 s)")
    t0 = time.monotonic()
    cri.rpc("StopContainer", container_id=cid, timeout=20)
    took = time.monotonic() - t0
    check(took < 10, "TERM was enough (%.1f s)" % took)
    cstatus = cri.rpc("ContainerStatus", container_id=cid).status
    check(cstatus.state == pb.CONTAINER_EXITED and cstatus.exit_code == 43,
          "main exited %d (want the trap's 43)" % cstatus.exit_code)
    check("got TERM" in read(log) and gone(pid), "trap ran, process gone")
    say("  exited with the trap's code 43 after %.2f s" % took)
    cri.rpc("StopContainer", container_id=cid2, timeout=2)
    check(cri.rpc("ContainerStatus", container_id=cid2).status.state == pb.CONTAINER_EXITED, "side exited")

    say("RemoveContainer main, side")
    for c in (cid, cid2):
        cri.rpc("RemoveContainer", container_id=c)
        check(layout.leftovers(parent, c) == [], "cgroups left: %s" % layout.leftovers(parent, c))
        check(not cri.exists("/run/containerd/runc/k8s.io/" + c), "runtime state of %s left" % c)
    check(gone(pid2), "side's process gone")

    say("StopPodSandbox + RemovePodSandbox")
    cri.rpc("StopPodSandbox", pod_sandbox_id=pod)
    check(gone(sandbox_pid), "pause gone")
    cri.rpc("RemovePodSandbox", pod_sandbox_id=pod)
    check(layout.leftovers(parent, pod) == [], "pod cgroups left: %s" % layout.leftovers(parent, pod))
    check(not cri.exists("/run/containerd/runc/k8s.io/" + pod), "runtime state of the pod left")
    check([m for m in cri.mounts_under(cri.base) if pod in m] == [], "pod mounts left")
    check(pod not in cri.pod_ids(), "pod still listed")
    if layout.systemd:
        for c in (pod, cid, cid2):
            state = unit_state("cri-containerd-%s.scope" % c).get("ActiveState")
            check(state == "inactive", "scope of %s: %s" % (c, state))
    say("  nothing left: processes, cgroups, runtime state, mounts")


def orphan_flow(cri, handler, layout, say=lambda msg: None):
    """A container in the pod's pid namespace exits while a child it
    started keeps running (reparented to the pause process).  containerd's
    shim then calls the runtime's `kill --all <id> 9` on the stopped
    container, then `delete`: the child must die and the cgroup go, fast
    (a node would otherwise hang the pod in Terminating)."""
    pb = cri.pb
    parent = layout.new_parent()
    say("container leaving a child behind in the pod's pid namespace (%s)" % handler)
    pod, config = run_pod(cri, handler, "orphan-" + handler, parent)
    try:
        cid, _, pid = start_container(cri, pod, config, "leaver", ["sh", "-c", "sleep 1000 & exec sleep 1"])
        procs_file = layout.dir("pids", parent, cid) + "/cgroup.procs"

        def the_child():
            try:
                return [int(p) for p in read(procs_file).split() if b"1000" in procs.cmdline(int(p))]
            except OSError:
                return []

        check(wait_for(the_child, timeout=5), "the child in the container's cgroup")
        child = the_child()
        t0 = time.monotonic()
        check(wait_for(lambda: cri.rpc("ContainerStatus", container_id=cid, deadline_s=5).status.state
                       == pb.CONTAINER_EXITED, timeout=5), "leaver reported exited")
        check(all(gone(p, timeout=3) for p in child), "the child was killed with the container")
        cri.rpc("StopContainer", container_id=cid, timeout=2, deadline_s=10)
        cri.rpc("RemoveContainer", container_id=cid, deadline_s=10)
        took = time.monotonic() - t0
        check(layout.leftovers(parent, cid) == [], "cgroup left: %s" % layout.leftovers(parent, cid))
        check(took < 5, "exit to removal took %.1f s" % took)
        say("  the child died with the container; stop + remove done in %.2f s" % took)
    finally:
        cri.rpc("StopPodSandbox", pod_sandbox_id=pod, check=False, deadline_s=10)
        cri.rpc("RemovePodSandbox", pod_sandbox_id=pod, check=False, deadline_s=10)


def propagation_flow(cri, handler, propagation, layout, say=lambda msg: None):
    """A volume with rslave (HOST_TO_CONTAINER) or rshared (BIDIRECTIONAL)
    root propagation: a mount made on the node after the start reaches
    the container through it."""
    pb = cri.pb
    short = "slave" if propagation == "PROPAGATION_HOST_TO_CONTAINER" else "shared"
    vol = os.path.join(cri.base, "vol-%s-%s" % (handler, short))
    os.makedirs(os.path.join(vol, "late"))
    cri.in_ns("mount", "--bind", vol, vol)
    cri.in_ns("mount", "--make-shared", vol)
    parent = layout.new_parent()
    say("pod with a %s volume (rootfsPropagation r%s) on %s" % (propagation, short, handler))
    pod, config = run_pod(cri, handler, "prop-%s-%s" % (handler, short), parent)
    try:
        mount = pb.Mount(container_path="/vol", host_path=vol, propagation=getattr(pb, propagation))
        cid, _, pid = start_container(cri, pod, config, "c", ["sleep", "1000"], mounts=[mount])
        line = [ln for ln in read("/proc/%d/mountinfo" % pid).splitlines() if ln.split()[4] == "/vol"][0]
        want = "master:" if short == "slave" else "shared:"
        check(want in line, "/vol inside: %s" % line)
        cri.in_ns("mount", "-t", "tmpfs", "late", os.path.join(vol, "late"))
        r = cri.rpc("ExecSync", container_id=cid, cmd=["grep", " /vol/late ", "/proc/self/mountinfo"], timeout=20)
        check(r.exit_code == 0, "the node's late mount reached the container")
        say("  the node's new mount under the volume is seen inside")
    finally:
        cri.rpc("StopPodSandbox", pod_sandbox_id=pod, check=False)
        cri.rpc("RemovePodSandbox", pod_sandbox_id=pod, check=False)
        for point in cri.mounts_under(vol):
            cri.in_ns("umount", "-l", point, check=False)
    check(layout.leftovers(parent, pod) == [], "pod cgroups left")


def main(argv):
    import argparse
    import shutil
    import tempfile

    from engines.cri import CriNode

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--systemd-cgroup", action="store_true")
    ap.add_argument("--no-sandbox", action="store_true", help="containerd in our own namespaces")
    ap.add_argument("--base", default=None)
    ap.add_argument("--busybox", default=shutil.which("busybox"))
    ap.add_argument("handlers", nargs="+", metavar="HANDLER=BINARY")
    args = ap.parse_args(argv)
    runtimes = dict(h.split("=", 1) for h in args.handlers)
    base = args.base or tempfile.mkdtemp(prefix="pyrunc-cri-")
    layout = Layout(args.systemd_cgroup)
    say = lambda msg: print(msg, flush=True)
    node = CriNode(os.path.join(base, "node"), runtimes, args.busybox, systemd_cgroup=args.systemd_cgroup,
                   sandbox=not args.no_sandbox)
    failed = []
    try:
        say("containerd %s with CRI, handlers %s, SystemdCgroup=%s"
            % (subprocess.run(["containerd", "--version"], capture_output=True, text=True).stdout.split()[2],
               ", ".join(sorted(runtimes)), str(args.systemd_cgroup).lower()))
        node.start()
        flows = [(h, "kubelet flow", lambda h=h: kubelet_flow(node, h, layout, say)) for h in sorted(runtimes)]
        flows += [(h, "orphaned child", lambda h=h: orphan_flow(node, h, layout, say)) for h in sorted(runtimes)]
        for prop in ("PROPAGATION_HOST_TO_CONTAINER", "PROPAGATION_BIDIRECTIONAL"):
            flows += [(h, prop, lambda h=h, p=prop: propagation_flow(node, h, p, layout, say))
                      for h in sorted(runtimes)]
        for handler, what, flow in flows:
            say("== %s: %s" % (handler, what))
            try:
                flow()
            except AssertionError as e:
                failed.append("%s: %s: %s" % (handler, what, str(e).splitlines()[0]))
                say("FAILED " + failed[-1])
    finally:
        node.stop()
        if not args.systemd_cgroup:
            for c in os.listdir(CG):
                procs.remove_cgroup_tree(CG + "/" + c + layout.cgroupfs_root)
        shutil.rmtree(base, ignore_errors=True)
    if failed:
        say("%d flow(s) failed:\n  %s" % (len(failed), "\n  ".join(failed)))
        return 1
    say("all steps passed; containerd, shims, mounts, cgroups and files removed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
