# setuptools reads the metadata from pyproject.toml; this file hands cffi the
# out-of-line (API mode) extension modules, adds the one plain C extension
# (_native/clone.c), compiles the launcher (_native/pyrunc.c) and records the
# git commit that `pyrunc --version` prints (runc's layout).
import os
import subprocess
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

# setuptools has no build_scripts of its own: it runs distutils' (its vendored copy).
from distutils.command.build_scripts import build_scripts  # noqa: E402


class BuildLauncher(build_scripts):
    """A script named *.c is a C program: compiled and linked into the
    scripts directory under its name without `.c` (so a wheel, and
    `pip install .`, carry the compiled launcher).  Other scripts are
    copied as usual."""

    def copy_scripts(self):
        programs = [s for s in self.scripts if s.endswith(".c")]
        self.scripts = [s for s in self.scripts if not s.endswith(".c")]
        outfiles, updated = super().copy_scripts() if self.scripts else ([], [])
        for source in programs:
            out = os.path.join(self.build_dir, os.path.basename(source)[:-2])
            self._compile(source, out)
            outfiles.append(out)
            updated.append(out)
        return outfiles, updated

    def _compile(self, source, out):
        """Freestanding first (see _native/pyrunc.c), else on libc."""
        from distutils.ccompiler import new_compiler
        from distutils.errors import CompileError, LinkError

        macros = [("PYRUNC_PYTHON", '"%s"' % sys.executable),
                  ("PYRUNC_PYVER", '"%s"' % sysconfig.get_python_version())]
        freestanding = ["-ffreestanding", "-fno-builtin", "-fno-stack-protector", "-static", "-nostdlib"]
        for extra in (freestanding, []):
            cc = new_compiler()
            objdir = os.path.join(self.build_dir, "launcher-obj", "fs" if extra else "libc")
            try:
                objs = cc.compile([source], output_dir=objdir, extra_postargs=["-O2"] + extra,
                                  macros=macros + ([("PYRUNC_FREESTANDING", "1")] if extra else []))
                cc.link_executable(objs, os.path.basename(out), output_dir=self.build_dir,
                                   extra_postargs=extra)
            except (CompileError, LinkError):
                if not extra:
                    raise
                continue
            os.chmod(out, 0o755)
            return


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
    cffi_modules=[
        "_native/build_core.py:ffi",
        "_native/build_bpf.py:ffi",
        "_native/build_seccomp.py:ffi",
    ],
    ext_modules=[Extension("pyrunc._native_clone", ["_native/clone.c"], py_limited_api=True)],
    cmdclass={"build_py": BuildPyWithCommit, "build_scripts": BuildLauncher},
)
