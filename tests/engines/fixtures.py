"""Shared pieces of the engine test modules: the image and skip reasons."""
import os
import shutil

import pytest

from conftest import PYRUNC, find_busybox, is_root
from engines.oci_image import build_oci_archive

IMAGE_NAME = "localhost/pyrunc-busybox:latest"


def require(*tools, package):
    """Skip, naming the package, unless every tool is on PATH."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip("%s not installed: apt-get install %s" % (", ".join(missing), package))


def require_basics():
    if not is_root():
        pytest.skip("engine tests need root (engines run real containers)")
    if not os.access(PYRUNC, os.X_OK):
        pytest.skip("no installed pyrunc launcher at %s (make venv)" % PYRUNC)
    busybox = find_busybox()
    if busybox is None:
        pytest.skip("no static busybox for the test image (apt-get install busybox-static)")
    return busybox


def image_archive(directory):
    """The busybox oci-archive, built in `directory`."""
    busybox = require_basics()
    path = os.path.join(str(directory), "busybox-oci.tar")
    build_oci_archive(path, busybox, IMAGE_NAME)
    return path
