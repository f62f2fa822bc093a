"""Run a command with a pseudo-terminal as its stdin/stdout/stderr."""
import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time


def run_on_pty(argv, rows=24, cols=80, timeout=30, env=None):
    """(exit status, output decoded) of argv run on a fresh pty."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    try:
        proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, env=env)
    finally:
        os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # EIO: every slave end closed
                    break
                if not chunk:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
        return proc.wait(timeout=10), out.decode(errors="replace")
    finally:
        os.close(master)
