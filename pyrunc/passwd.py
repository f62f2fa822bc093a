"""/etc/passwd lookups by uid (the host's for `list`, the container's for
HOME after pivot_root): no pwd module, which would ask NSS services the
container may not have."""


def entry_for_uid(uid, path="/etc/passwd"):
    """The fields of the first passwd line for `uid`, or None."""
    want = str(uid)
    try:
        with open(path, "rb") as f:
            for line in f:
                parts = line.decode(errors="replace").rstrip("\n").split(":")
                if len(parts) >= 6 and parts[2] == want:
                    return parts
    except OSError:
        pass
    return None
