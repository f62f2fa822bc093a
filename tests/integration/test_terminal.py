"""Terminals: a pty from the container's own devpts, the master received
over --console-socket exactly as conmon/containerd's shim receive it (one
SCM_RIGHTS fd), consoleSize, /dev/console, exec -t, and the foreground
`run` proxying the caller's terminal (raw mode, resize, restore)."""
import fcntl
import os
import select
import signal
import socket
import struct
import subprocess
import termios
import time

import pytest

from conftest import needs_root

pytestmark = needs_root


class ConsoleSocket:
    """A listening AF_UNIX socket that accepts one connection and reads
    the pty master from it."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(1)
        self.sock.settimeout(30)

    def receive(self):
        conn, _ = self.sock.accept()
        with conn:
            msg, fds, _, _ = socket.recv_fds(conn, 4096, 4)
        assert len(fds) == 1, fds  # exactly one fd, as the engines expect
        return fds[0]

    def close(self):
        self.sock.close()


def read_until(fd, needle, timeout=20):
    out = b""
    deadline = time.monotonic() + timeout
    while needle.encode() not in out:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("timed out waiting for %r; got %r" % (needle, out))
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out.decode(errors="replace")


def set_winsize(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def shell_bundle(bundle, size=None):
    def cfg(c):
        c["process"]["args"] = ["sh"]
        c["process"]["terminal"] = True
        c["process"]["env"] = ["PATH=/bin", "TERM=dumb", "PS1=$ "]
        if size:
            c["process"]["consoleSize"] = {"height": size[0], "width": size[1]}
    bundle.update(cfg)


def test_console_socket_create_gives_working_pty(bundle, runtime, tmp_path):
    shell_bundle(bundle, size=(40, 120))
    cs = ConsoleSocket(tmp_path / "console.sock")
    cid = runtime.new_id()
    master = -1
    try:
        runtime("create", "--console-socket", cs.path, "-b", bundle.path, cid)
        master = cs.receive()
        runtime("start", cid)
        os.write(master, b"stty size; tty; stat -c %t:%T /dev/console; echo $((6*7))M\n")
        out = read_until(master, "42M")
        assert "40 120" in out  # consoleSize
        assert "/dev/pts/0" in out  # the container's own devpts: its first pty
        assert "88:0" in out  # /dev/console is that pty (major 136)
        set_winsize(master, 33, 99)
        os.write(master, b"stty size; echo DONE$((1+1))\n")
        out = read_until(master, "DONE2")
        assert "33 99" in out
        os.write(master, b"exit 3\n")
        for _ in range(200):
            if runtime.state(cid)["status"] == "stopped":
                break
            time.sleep(0.05)
        assert runtime.state(cid)["status"] == "stopped"
    finally:
        if master >= 0:
            os.close(master)
        cs.close()


def test_container_pty_is_controlling_terminal(bundle, runtime, tmp_path):
    shell_bundle(bundle)
    cs = ConsoleSocket(tmp_path / "c.sock")
    cid = runtime.new_id()
    try:
        runtime("create", "--console-socket", cs.path, "-b", bundle.path, cid)
        master = cs.receive()
        runtime("start", cid)
        # ^C through the pty interrupts the foreground job: the line
        # discipline signals the session's foreground group
        os.write(master, b"sleep 100; echo after-sleep\n")
        time.sleep(0.5)
        os.write(master, b"\x03")
        os.write(master, b"echo alive$((2+3))\n")
        # within far less than the 100 s the sleep would take
        read_until(master, "alive5", timeout=15)
        os.close(master)
    finally:
        cs.close()


def test_exec_tty_console_socket(bundle, runtime, tmp_path):
    bundle.set_args("sleep", "1000")
    cid = runtime.new_id()
    runtime("run", "-d", "-b", bundle.path, cid)
    cs = ConsoleSocket(tmp_path / "exec.sock")
    try:
        pidfile = tmp_path / "pid"
        runtime("exec", "-d", "-t", "--console-socket", cs.path, "--pid-file", str(pidfile), cid, "sh")
        master = cs.receive()
        epid = int(pidfile.read_text())
        set_winsize(master, 25, 81)
        os.write(master, b"stty size; tty; echo X$((3*3))\n")
        out = read_until(master, "X9")
        assert "25 81" in out
        assert "/dev/pts/" in out
        with open("/proc/%d/stat" % epid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        assert fields[3] == fields[2]  # session leader (sid == pid)
        assert int(fields[4]) != 0  # with a controlling terminal
        os.write(master, b"exit\n")
        os.close(master)
    finally:
        cs.close()


def test_create_tty_without_socket_is_refused(bundle, runtime):
    shell_bundle(bundle)
    cid = runtime.new_id()
    p = runtime("create", "-b", bundle.path, cid, check=False)
    assert p.returncode == 1
    assert "cannot allocate tty if pyrunc will detach without setting console socket" in p.stderr
    assert runtime("list", "-q").stdout.strip() == ""


def test_console_socket_without_tty_is_refused(bundle, runtime, tmp_path):
    cs = ConsoleSocket(tmp_path / "c.sock")
    try:
        p = runtime("create", "--console-socket", cs.path, "-b", bundle.path, runtime.new_id(), check=False)
        assert p.returncode == 1
        assert "cannot use console socket if pyrunc will not detach or allocate tty" in p.stderr
    finally:
        cs.close()


def spawn_on_pty(cmd, rows=24, cols=80):
    """Run `cmd` with a fresh pty as its controlling terminal and stdio."""
    master, slave = os.openpty()
    set_winsize(master, rows, cols)

    def child_setup():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    p = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, preexec_fn=child_setup)
    return p, master, slave


def test_foreground_run_proxies_terminal(bundle, runtime):
    shell_bundle(bundle)
    cid = runtime.new_id()
    p, master, slave = spawn_on_pty(runtime.cmd("run", "-b", bundle.path, cid), 24, 80)
    try:
        before = termios.tcgetattr(slave)
        os.write(master, b"stty size; echo A$((5*5))\n")
        out = read_until(master, "A25")
        assert "24 80" in out
        # raw mode on our side while the container runs
        now = termios.tcgetattr(slave)
        assert not now[3] & termios.ICANON and not now[3] & termios.ECHO
        # a resize of the user's terminal reaches the container's pty
        set_winsize(master, 50, 132)
        os.kill(p.pid, signal.SIGWINCH)
        time.sleep(0.3)
        os.write(master, b"stty size; echo B$((6*6))\n")
        out = read_until(master, "B36")
        assert "50 132" in out
        os.write(master, b"exit 7\n")
        assert p.wait(timeout=30) == 7
        after = termios.tcgetattr(slave)
        assert after == before  # the user's terminal is restored
        assert runtime("list", "-q").stdout.strip() == ""  # deleted after exit
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
        os.close(slave)


def test_foreground_exec_tty_proxies_terminal(bundle, runtime):
    bundle.set_args("sleep", "1000")
    cid = runtime.new_id()
    runtime("run", "-d", "-b", bundle.path, cid)
    p, master, slave = spawn_on_pty(runtime.cmd("exec", "-t", cid, "sh"), 30, 90)
    try:
        os.write(master, b"stty size; tty; echo C$((7*7))\n")
        out = read_until(master, "C49")
        assert "30 90" in out and "/dev/pts/" in out
        os.write(master, b"exit 9\n")
        assert p.wait(timeout=30) == 9
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize("verb", ["run"])
def test_foreground_run_with_console_socket_is_refused(bundle, runtime, tmp_path, verb):
    shell_bundle(bundle)
    cs = ConsoleSocket(tmp_path / "c.sock")
    try:
        p = runtime(verb, "--console-socket", cs.path, "-b", bundle.path, runtime.new_id(), check=False)
        assert p.returncode == 1
        assert "cannot use console socket if pyrunc will not detach or allocate tty" in p.stderr
    finally:
        cs.close()
