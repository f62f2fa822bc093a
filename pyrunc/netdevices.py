"""linux.netDevices (runtime-spec 1.3): host network interfaces moved into
the container's network namespace at create and renamed to `name` when
given; a name with `%d` is a template the kernel numbers inside (eth%d:
eth0, or eth1 if eth0 is taken).  Delete leaves them to the namespace's
owner; only a failed create moves back what it moved.

pyroute2 is imported only here, and only when the config has netDevices."""
import errno
import os

from .errors import ConfigError, PyruncError

IFNAMSIZ = 16
CLONE_NEWNET = 0x40000000


def field(host_name):
    return 'linux.netDevices["%s"]' % host_name


def check(spec, plan):
    """Refuse what cannot work, before anything is made (runc's rules)."""
    devices = spec.linux.net_devices
    if not devices:
        return
    if not plan.has("network"):
        raise ConfigError("linux.netDevices: unable to move network devices without a private network namespace")
    joined = dict(plan.join).get("network")
    if joined is not None and _same_ns(joined, "/proc/self/ns/net"):
        raise ConfigError("linux.netDevices: unable to move network devices without a private network namespace "
                          "(%s is the runtime's own)" % joined)
    if os.geteuid() != 0:
        raise ConfigError("linux.netDevices: network devices are not supported for rootless containers")
    targets = {}
    for host_name, dev in devices.items():
        _check_name(field(host_name), host_name)
        name = dev.name or host_name
        if dev.name is not None:
            _check_name(field(host_name) + ".name", name, template_ok=True)
        if is_template(name):
            continue  # the kernel picks a free number: shared templates do not clash
        if name in targets:
            raise ConfigError('%s.name: "%s" is also the container name of linux.netDevices["%s"]'
                              % (field(host_name), name, targets[name]))
        targets[name] = host_name


def _check_name(where, name, template_ok=False):
    # The kernel takes a '%' only as the one "%d" of a template, and never
    # leaves one in a device's name.
    bad_percent = "%" in name and not (template_ok and is_template(name) and name.count("%") == 1)
    if not name or len(name.encode()) >= IFNAMSIZ or name in (".", "..") or bad_percent \
            or any(c == "/" or c == ":" or c.isspace() for c in name):
        raise ConfigError("%s: %r is not a valid network interface name" % (where, name))


def is_template(name):
    return "%d" in name


def _same_ns(a, b):
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def move_in(spec, fd, moved):
    """Move each device into the container's network namespace (an open fd);
    `moved` (a list) gets {"host": ..., "name": ...} for each one as soon as
    it is there ("name" its name there), so that a failure half-way can
    give back the ones moved."""
    from .network.links import iproute

    if _same_ns("/proc/self/fd/%d" % fd, "/proc/self/ns/net"):
        raise PyruncError("linux.netDevices: the container's network namespace is the runtime's own")
    # Fixed names first: a template numbered before them could take the
    # name a fixed one asks for (eth%d -> eth0, then "eth0" clashes).
    devices = sorted(spec.linux.net_devices.items(), key=lambda kv: is_template(kv[1].name or kv[0]))
    with iproute() as ipr:
        for host_name, dev in devices:
            name = dev.name or host_name
            found = ipr.link_lookup(ifname=host_name)
            if not found:
                raise PyruncError("%s: no such network interface in the runtime's namespace" % field(host_name))
            addresses = _permanent_global_addresses(ipr, found[0])
            # A template is numbered in the namespace that renames: move
            # under a unique interim name, then rename inside, where the
            # device is found by that name whatever ifindex it got.
            first = "pyrunc" + os.urandom(4).hex() if is_template(name) else name
            _move(ipr, fd, found[0], host_name, first, moved)
            _configure_inside(fd, host_name, moved[-1], name, addresses)


def _move(ipr, fd, index, host_name, name, moved):
    """Move and rename in one request; on success `moved` gets the device."""
    try:
        ipr.link("set", index=index, net_ns_fd=fd, ifname=name)
    except Exception as e:  # pyroute2's NetlinkError, or an OSError
        # The kernel moves first and renames after: a name taken in
        # the container fails the rename with the device moved.
        if not ipr.link_lookup(ifname=host_name):
            there = _name_in(fd, (host_name, name))
            if there is not None:
                moved.append({"host": host_name, "name": there})
        if getattr(e, "code", None) == errno.EEXIST:
            where = field(host_name) + (".name" if name != host_name else "")
            raise PyruncError("%s: %s already exists in the container's network namespace "
                              "(a name with %%d is numbered by the kernel)" % (where, name)) from None
        raise PyruncError("%s: moving into the container's network namespace as %s: %s"
                          % (field(host_name), name, _reason(e))) from None
    moved.append({"host": host_name, "name": name})


# The spec: keep the permanent (IFA_F_PERMANENT) global-scope addresses of
# every family, and set the device up once it is in the container's namespace.
IFA_F_PERMANENT = 0x80
RT_SCOPE_UNIVERSE = 0


def _permanent_global_addresses(ipr, index):
    """[(family, address, prefixlen)] to carry over; read before the move,
    which drops them (IPv6 ones go as soon as the link is down)."""
    out = []
    for msg in ipr.get_addr(index=index):
        flags = msg.get_attr("IFA_FLAGS")
        if flags is None:
            flags = msg["flags"]
        if msg["scope"] != RT_SCOPE_UNIVERSE or not flags & IFA_F_PERMANENT:
            continue
        addr = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        if addr:
            out.append((msg["family"], addr, msg["prefixlen"]))
    return out


def _configure_inside(ns_fd, host_name, dev, name, addresses):
    """In the container's namespace: rename the device (its `moved` entry
    dev, whose "name" follows it, for the undo) to `name` if that differs
    (a template: the kernel says what it became), add its addresses, set it
    up."""
    from .network.links import in_netns, iproute

    def work():
        with iproute() as ipr:
            index = ipr.link_lookup(ifname=dev["name"])[0]
            if name != dev["name"]:
                ipr.link("set", index=index, ifname=name)
                dev["name"] = ipr.get_links(index)[0].get_attr("IFLA_IFNAME")
            for family, addr, prefixlen in addresses:
                ipr.addr("add", index=index, family=family, address=addr, prefixlen=prefixlen)
            ipr.link("set", index=index, state="up")

    try:
        in_netns(ns_fd, work)
    except Exception as e:
        raise PyruncError("%s: configuring %s in the container's network namespace: %s"
                          % (field(host_name), name, _reason(e))) from None


def _name_in(ns_fd, names):
    """The first of names that is an interface in the namespace ns_fd."""
    from .network.links import in_netns, iproute

    def work():
        with iproute() as ipr:
            return next((n for n in names if ipr.link_lookup(ifname=n)), None)

    return in_netns(ns_fd, work)


def move_back(ns_fd, moved, warn):
    """Give each moved device back to the runtime's network namespace under
    its host name from the container's namespace (an fd the caller keeps
    open): a failed create's undo.  Not on delete: the spec leaves the
    interface's lifecycle to the namespace's owner (the kernel destroys
    virtual devices with the namespace and returns physical ones to the
    initial namespace).  Problems are warnings."""
    if not moved:
        return
    home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _move_back_from(ns_fd, home, moved, warn)
    finally:
        os.close(home)


def _move_back_from(ns_fd, home_fd, moved, warn):
    from .network.links import in_netns, iproute

    def work():
        with iproute() as ipr:
            for dev in moved:
                found = ipr.link_lookup(ifname=dev["name"])
                if not found:
                    warn("%s: %s is no longer in the container's network namespace"
                         % (field(dev["host"]), dev["name"]))
                    continue
                try:
                    ipr.link("set", index=found[0], net_ns_fd=home_fd, ifname=dev["host"])
                except Exception as e:
                    warn("%s: moving %s back to the runtime's network namespace: %s"
                         % (field(dev["host"]), dev["name"], _reason(e)))

    in_netns(ns_fd, work)


def _reason(e):
    code = getattr(e, "code", None)
    if isinstance(code, int) and code > 0:
        return os.strerror(code)
    return str(e) or e.__class__.__name__
