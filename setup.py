# setuptools reads the metadata from pyproject.toml; this file only exists
# to hand cffi the out-of-line (API mode) extension modules to compile.
from setuptools import setup

setup(
    cffi_modules=[
        "_native/build_core.py:ffi",
        "_native/build_bpf.py:ffi",
        "_native/build_seccomp.py:ffi",
    ],
)
