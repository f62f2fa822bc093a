"""File descriptors reaching the container: stdio, --preserve-fds N,
socket activation (LISTEN_FDS/LISTEN_PID), and nothing else -- listed from
inside through /proc/<shell>/fd (a child lists the shell's fds)."""
import os
import subprocess
import time

from conftest import needs_root

pytestmark = needs_root

# no pipe: the shell would hold its ends while ls lists its fds
LIST_FDS = "ls /proc/$$/fd; echo END; "


def split_listing(out):
    """-> (fd numbers listed, the lines after them)."""
    lines = out.split("\n")
    end = lines.index("END")
    return lines[:end], lines[end + 1:]


def run_with_fds(runtime, args, fds, env=None, listen_pid=False):
    """Run pyrunc with `fds` ({number: path}) open in it, through a shell
    that sets them up (pytest's own low fds are left alone)."""
    redirs = " ".join("%d<'%s'" % (num, path) for num, path in sorted(fds.items()))
    # LISTEN_PID must name the runtime itself (sd_listen_fds' rule): the
    # shell's pid is pyrunc's after exec.
    prefix = "LISTEN_PID=$$ " if listen_pid else ""
    cmd = ["sh", "-c", '%sexec "$@" %s' % (prefix, redirs), "sh"] + runtime.cmd(*args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, env=env)


def files(tmp_path, *contents):
    out = {}
    for i, text in enumerate(contents):
        p = tmp_path / ("f%d" % i)
        p.write_text(text + "\n")
        out[i + 3] = str(p)
    return out


def test_preserve_fds_2_gives_exactly_fds_0_to_4(bundle, runtime, tmp_path):
    bundle.set_args("sh", "-c", LIST_FDS + "cat <&3; cat <&4")
    # fd 5 is open in pyrunc too, but not asked for: it must not arrive
    fds = files(tmp_path, "three", "four", "five")
    p = run_with_fds(runtime, ("run", "--preserve-fds", "2", "-b", bundle.path, runtime.new_id()), fds)
    assert p.returncode == 0, p.stderr
    listed, rest = split_listing(p.stdout)
    assert listed == ["0", "1", "2", "3", "4"]
    assert rest[0:2] == ["three", "four"]


def test_no_preserve_no_extra_fds(bundle, runtime, tmp_path):
    bundle.set_args("sh", "-c", LIST_FDS)
    p = run_with_fds(runtime, ("run", "-b", bundle.path, runtime.new_id()), files(tmp_path, "x", "y"))
    assert p.returncode == 0, p.stderr
    assert split_listing(p.stdout)[0] == ["0", "1", "2"]


def test_missing_preserved_fd_is_an_error(bundle, runtime, tmp_path):
    p = run_with_fds(runtime, ("run", "--preserve-fds", "3", "-b", bundle.path, runtime.new_id()),
                     files(tmp_path, "only-one"))
    assert p.returncode == 1
    assert "unable to stat preserved-fd 1 (of 3)" in p.stderr
    assert runtime("list", "-q").stdout.strip() == ""


def test_socket_activation_listen_fds(bundle, runtime, tmp_path):
    bundle.set_args("sh", "-c", LIST_FDS + "echo $LISTEN_FDS $LISTEN_PID; cat <&3; cat <&4; cat <&5")
    env = dict(os.environ, LISTEN_FDS="2")
    p = run_with_fds(runtime, ("run", "--preserve-fds", "1", "-b", bundle.path, runtime.new_id()),
                     files(tmp_path, "l1", "l2", "p1"), env=env, listen_pid=True)
    assert p.returncode == 0, p.stderr
    listed, rest = split_listing(p.stdout)
    assert listed == ["0", "1", "2", "3", "4", "5"]
    assert rest[0] == "2 1"  # LISTEN_FDS counts the activation fds; the init is pid 1
    assert rest[1:4] == ["l1", "l2", "p1"]


def test_listen_fds_for_another_pid_are_ignored(bundle, runtime, tmp_path):
    bundle.set_args("sh", "-c", LIST_FDS + "echo [$LISTEN_FDS]")
    env = dict(os.environ, LISTEN_FDS="1", LISTEN_PID="1")
    p = run_with_fds(runtime, ("run", "-b", bundle.path, runtime.new_id()), files(tmp_path, "l1"), env=env)
    assert p.returncode == 0, p.stderr
    listed, rest = split_listing(p.stdout)
    assert listed == ["0", "1", "2"]
    assert rest[0] == "[]"


def test_exec_preserve_fds(bundle, runtime, tmp_path):
    bundle.set_args("sleep", "1000")
    cid = runtime.new_id()
    runtime("run", "-d", "-b", bundle.path, cid)
    p = run_with_fds(runtime, ("exec", "--preserve-fds", "1", cid, "sh", "-c", LIST_FDS + "cat <&3"),
                     files(tmp_path, "e3", "e4"))
    assert p.returncode == 0, p.stderr
    listed, rest = split_listing(p.stdout)
    assert listed == ["0", "1", "2", "3"]
    assert rest[0] == "e3"


def test_created_container_holds_no_runtime_fds(bundle, runtime):
    """While waiting for `start`, the init holds only stdio and the exec
    fifo handle; after start, the process has stdio only."""
    bundle.set_args("sh", "-c", LIST_FDS)
    cid = runtime.new_id()
    out = bundle.path + "/out"
    with open(out, "w") as f:
        subprocess.run(runtime.cmd("create", "-b", bundle.path, cid), stdout=f, stderr=f,
                       stdin=subprocess.DEVNULL, check=True, timeout=60)
    pid = runtime.state(cid)["pid"]
    held = sorted(int(x) for x in os.listdir("/proc/%d/fd" % pid))
    assert held[:3] == [0, 1, 2] and len(held) == 4, held
    assert os.readlink("/proc/%d/fd/%d" % (pid, held[3])).endswith("/exec.fifo")
    runtime("start", cid)
    for _ in range(100):
        if runtime.state(cid)["status"] == "stopped":
            break
        time.sleep(0.05)
    with open(out) as f:
        assert split_listing(f.read())[0] == ["0", "1", "2"]
