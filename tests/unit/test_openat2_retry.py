"""openat2 with RESOLVE_IN_ROOT answers EAGAIN whenever a rename happens
anywhere on the system during the lookup: pyrunc retries instead of failing
a create.  Checked against the real kernel with renames running beside it."""
import os
import threading

from pyrunc import linux


def test_resolve_in_root_survives_concurrent_renames(tmp_path):
    root = tmp_path / "root"
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "link").symlink_to("../../../a/b")  # ".." in a scoped lookup: where the kernel checks for renames
    spin = tmp_path / "spin"
    spin.mkdir()
    stop = threading.Event()

    def renamer():
        a, b = str(spin / "x"), str(spin / "y")
        open(a, "w").close()
        while not stop.is_set():
            os.rename(a, b)
            os.rename(b, a)

    t = threading.Thread(target=renamer)
    t.start()
    rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        for _ in range(2000):
            fd = linux.openat2(rootfd, "link/c", linux.O_PATH, linux.RESOLVE_IN_ROOT)
            os.close(fd)
    finally:
        stop.set()
        t.join()
        os.close(rootfd)
