"""Helpers for the engine integration tests (containerd, podman): a locally
built busybox OCI image and private engine configurations."""
