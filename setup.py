# setuptools reads the metadata from pyproject.toml; this file only exists
# to hand cffi the out-of-line (API mode) extension modules to compile, and
# to record the git commit that `pyrunc --version` prints (runc's layout).
import os
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py


def _git_commit():
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "-C", here, "describe", "--always", "--dirty", "--abbrev=40"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


class BuildPyWithCommit(build_py):
    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "pyrunc", "_commit.py")
        with open(target, "w") as f:
            f.write("COMMIT = %r\n" % _git_commit())


setup(
    cmdclass={"build_py": BuildPyWithCommit},
    cffi_modules=[
        "_native/build_core.py:ffi",
        "_native/build_bpf.py:ffi",
        "_native/build_seccomp.py:ffi",
    ],
)
