"""Command line: runc's verbs, flags, texts and exit codes, one library call
per verb.  A hand-written flag parser (Go flag / urfave-cli rules: `-f`,
`--flag`, `--flag=value`, flags before positional arguments) keeps argparse
and its imports off every verb's start-up."""
import sys

from . import OCI_VERSION, __version__
from . import lazyos as os  # os without its import cost (see lazyos)
from .errors import PyruncError

USAGE_ERROR = 1


class UsageError(Exception):
    pass


class Flag:
    __slots__ = ("names", "dest", "takes_value", "multi", "default", "help")

    def __init__(self, names, dest, takes_value=True, default=None, multi=False, help=""):
        self.names = names
        self.dest = dest
        self.takes_value = takes_value
        self.multi = multi
        self.default = ([] if multi else default) if takes_value else (default or False)
        self.help = help


def B(names, dest, help=""):
    return Flag(names, dest, takes_value=False, help=help)


GLOBAL_FLAGS = (
    B(("debug",), "debug", "enable debug logging"),
    Flag(("log",), "log", help="set the log file to write pyrunc logs to (default is '/dev/stderr')"),
    Flag(("log-format",), "log_format", default="text", help="set the log format ('text' (default), or 'json')"),
    Flag(("root",), "root", default="/run/pyrunc", help="root directory for storage of container state"),
    Flag(("criu",), "criu", default="criu", help="path to the criu binary used for checkpoint and restore"),
    B(("systemd-cgroup",), "systemd_cgroup", "enable systemd cgroup support"),
    B(("strict",), "strict", "validate config.json exactly against the runtime-spec schema "
      "(no runc leniency: values runc accepts outside the spec are errors)"),
    Flag(("rootless",), "rootless", default="auto", help="ignore cgroup permission errors ('true', 'false', or 'auto')"),
    B(("help", "h"), "help", "show help"),
    B(("version", "v"), "version", "print the version"),
)

CREATE_FLAGS = (
    Flag(("bundle", "b"), "bundle", default="", help="path to the root of the bundle directory, defaults to the current directory"),
    Flag(("console-socket",), "console_socket", help="path to an AF_UNIX socket which will receive the console's pty master"),
    Flag(("pid-file",), "pid_file", help="specify the file to write the process id to"),
    B(("no-pivot",), "no_pivot", "do not use pivot root to jail process inside rootfs"),
    B(("no-new-keyring",), "no_new_keyring", "do not create a new session keyring for the container"),
    Flag(("preserve-fds",), "preserve_fds", default="0", help="Pass N additional file descriptors to the container"),
)

EXEC_FLAGS = (
    Flag(("console-socket",), "console_socket", help="path to an AF_UNIX socket which will receive the console's pty master"),
    Flag(("cwd",), "cwd", help="current working directory in the container"),
    Flag(("env", "e"), "env", multi=True, help="set environment variables"),
    B(("tty", "t"), "tty", "allocate a pseudo-TTY"),
    Flag(("user", "u"), "user", help="UID (format: <uid>[:<gid>])"),
    Flag(("additional-gids", "g"), "additional_gids", multi=True, help="additional gids"),
    Flag(("process", "p"), "process", help="path to the process.json"),
    B(("detach", "d"), "detach", "detach from the container's process"),
    Flag(("pid-file",), "pid_file", help="specify the file to write the process id to"),
    Flag(("process-label",), "process_label", help="set the asm process label for the process commonly used with selinux"),
    Flag(("apparmor",), "apparmor", help="set the apparmor profile for the process"),
    B(("no-new-privs",), "no_new_privs", "set the no new privileges value for the process"),
    Flag(("cap", "c"), "cap", multi=True, help="add a capability to the bounding set for the process"),
    Flag(("preserve-fds",), "preserve_fds", default="0", help="Pass N additional file descriptors to the container"),
    Flag(("cgroup",), "cgroup", multi=True, help="run the process in an (existing) sub-cgroup(s)"),
    B(("ignore-paused",), "ignore_paused", "allow exec in a paused container"),
)

UPDATE_FLAGS = (
    Flag(("resources", "r"), "resources", help="path to the file containing the resources to update or '-' to read from the standard input"),
    Flag(("blkio-weight",), "blkio_weight"), Flag(("cpu-period",), "cpu_period"),
    Flag(("cpu-quota",), "cpu_quota"), Flag(("cpu-share",), "cpu_share"),
    Flag(("cpu-rt-period",), "cpu_rt_period"), Flag(("cpu-rt-runtime",), "cpu_rt_runtime"),
    Flag(("cpuset-cpus",), "cpuset_cpus"), Flag(("cpuset-mems",), "cpuset_mems"),
    Flag(("cpu-idle",), "cpu_idle"), Flag(("cpu-burst",), "cpu_burst"),
    Flag(("kernel-memory",), "kernel_memory"), Flag(("kernel-memory-tcp",), "kernel_memory_tcp"),
    Flag(("memory",), "memory"), Flag(("memory-reservation",), "memory_reservation"),
    Flag(("memory-swap",), "memory_swap"), Flag(("pids-limit",), "pids_limit"),
    Flag(("l3-cache-schema",), "l3_cache_schema"), Flag(("mem-bw-schema",), "mem_bw_schema"),
)

# checkpoint/restore: runc's flags, shared where runc shares them
CRIU_FLAGS = (
    Flag(("image-path",), "image_path", default="", help="path for saving criu image files"),
    Flag(("work-path",), "work_path", default="", help="path for saving work files and logs"),
    B(("tcp-established",), "tcp_established", "allow open tcp connections"),
    B(("ext-unix-sk",), "ext_unix_sk", "allow external unix sockets"),
    B(("shell-job",), "shell_job", "allow shell jobs"),
    B(("file-locks",), "file_locks", "handle file locks, for safety"),
    Flag(("manage-cgroups-mode",), "manage_cgroups_mode", default="", help="cgroups mode: 'soft' (default), 'full' and 'strict'"),
    Flag(("empty-ns",), "empty_ns", multi=True, help="create a namespace, but don't restore its properties"),
    B(("auto-dedup",), "auto_dedup", "enable auto deduplication of memory images"),
    B(("lazy-pages",), "lazy_pages", "use userfaultfd to lazily restore memory pages"),
)

CHECKPOINT_FLAGS = CRIU_FLAGS + (
    Flag(("parent-path",), "parent_path", default="", help="path for previous criu image files in pre-dump"),
    B(("leave-running",), "leave_running", "leave the process running after checkpointing"),
    Flag(("status-fd",), "status_fd", default="-1", help="criu writes \\0 to this FD once lazy-pages is ready"),
    Flag(("page-server",), "page_server", default="", help="ADDRESS:PORT of the page server"),
    B(("pre-dump",), "pre_dump", "dump container's memory information only, leave the container running after this"),
)

RESTORE_FLAGS = CRIU_FLAGS + (
    Flag(("console-socket",), "console_socket", help="path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal"),
    Flag(("bundle", "b"), "bundle", default="", help="path to the root of the bundle directory"),
    B(("detach", "d"), "detach", "detach from the container's process"),
    Flag(("pid-file",), "pid_file", help="specify the file to write the process id to"),
    B(("no-subreaper",), "no_subreaper", "disable the use of the subreaper used to reap reparented processes"),
    B(("no-pivot",), "no_pivot", "do not use pivot root to jail process inside rootfs"),
    Flag(("lsm-profile",), "lsm_profile", default="", help="Specify an LSM profile to be used during restore in the form of TYPE:NAME."),
    Flag(("lsm-mount-context",), "lsm_mount_context", default="", help="Specify an LSM mount context to be used during restore."),
)

# verb: (flags, positional arg count (exact) or (min, None), usage, description)
VERBS = {
    "create": (CREATE_FLAGS, 1, "<container-id>", "create a container"),
    "run": (CREATE_FLAGS + (B(("detach", "d"), "detach", "detach from the container's process"),
                            B(("keep",), "keep", "do not delete the container after it exits")),
            1, "<container-id>", "create and run a container"),
    "start": ((), 1, "<container-id>", "executes the user defined process in a created container"),
    "state": ((), 1, "<container-id>", "output the state of a container"),
    "kill": ((B(("all", "a"), "all", "send the specified signal to all processes inside the container"),),
             (1, 2), "<container-id> [signal]", "kill sends the specified signal (default: SIGTERM) to the container's init process"),
    "delete": ((B(("force", "f"), "force", "Forcibly deletes the container if it is still running (uses SIGKILL)"),),
               1, "<container-id>", "delete any resources held by the container"),
    "list": ((Flag(("format", "f"), "format", default="table", help="select one of: table or json"),
              B(("quiet", "q"), "quiet", "display only container IDs")),
             0, "", "lists containers started by pyrunc with the given root"),
    "spec": ((Flag(("bundle", "b"), "bundle", default="", help="path to the root of the bundle directory"),
              B(("rootless",), "rootless", "generate a configuration for a rootless container"),
              Flag(("network",), "network", help="add pyrunc's network hooks: 'bridge'")),
             0, "", "create a new specification file"),
    "features": ((), 0, "", "show the enabled features"),
    "exec": (EXEC_FLAGS, (1, None), "<container-id> <command> [command options]", "execute new process inside the container"),
    "pause": ((), 1, "<container-id>", "pause suspends all processes inside the container"),
    "resume": ((), 1, "<container-id>", "resumes all processes that have been previously paused"),
    "ps": ((Flag(("format", "f"), "format", default="table", help="select one of: table or json"),),
           (1, None), "<container-id> [ps options]", "ps displays the processes running inside a container"),
    "events": ((Flag(("interval",), "interval", default="5s", help="set the stats collection interval"),
                B(("stats",), "stats", "display the container's stats then exit")),
               1, "<container-id>", "display container events such as OOM notifications, cpu, memory, and IO usage statistics"),
    "update": (UPDATE_FLAGS, 1, "<container-id>", "update container resource constraints"),
    "checkpoint": (CHECKPOINT_FLAGS, 1, "<container-id>", "checkpoint a running container"),
    "restore": (RESTORE_FLAGS, 1, "<container-id>", "restore a container from a previous checkpoint"),
}


class Args:
    """Parsed flags as attributes, plus `.args` (positional)."""

    def __init__(self, flags):
        for f in flags:
            setattr(self, f.dest, list(f.default) if f.multi else f.default)
        self.args = []


def _flag_table(flags):
    return {n: f for f in flags for n in f.names}


def reorder(flags, argv):
    """urfave/cli moves flags given after positional arguments to the front
    (`create ID --pid-file F` works); everything after `--` stays put."""
    table = _flag_table(flags)
    front, back = [], []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            back.extend(argv[i:])
            break
        if a.startswith("-") and a != "-":
            front.append(a)
            f = table.get(a.lstrip("-").split("=", 1)[0])
            if f is not None and f.takes_value and "=" not in a and i + 1 < len(argv):
                i += 1
                front.append(argv[i])
        else:
            back.append(a)
        i += 1
    return front + back


def parse_flags(flags, argv):
    """Go-flag style: returns (Args, rest)."""
    ns = Args(flags)
    table = _flag_table(flags)
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        name = a.lstrip("-")
        value = None
        if "=" in name:
            name, value = name.split("=", 1)
        f = table.get(name)
        if f is None:
            raise UsageError("flag provided but not defined: -%s" % name)
        if f.takes_value:
            if value is None:
                i += 1
                if i >= len(argv):
                    raise UsageError("flag needs an argument: -%s" % name)
                value = argv[i]
            if f.multi:
                getattr(ns, f.dest).append(value)
            else:
                setattr(ns, f.dest, value)
        else:
            if value is not None and value not in ("true", "false", "1", "0", "t", "f", "TRUE", "FALSE", "True", "False"):
                raise UsageError('invalid boolean value "%s" for -%s' % (value, name))
            setattr(ns, f.dest, value is None or value in ("true", "1", "t", "TRUE", "True"))
        i += 1
    return ns, argv[i:]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        g, rest = parse_flags(GLOBAL_FLAGS, argv)
    except UsageError as e:
        sys.stderr.write("Incorrect Usage. %s\n\n" % e)
        print_help()
        return USAGE_ERROR
    from . import log

    if g.log_format not in ("text", "json"):
        sys.stderr.write("pyrunc: invalid log-format: %s\n" % g.log_format)
        return 1
    try:
        log.configure(g.log, g.log_format, g.debug)
    except OSError as e:
        sys.stderr.write("pyrunc: cannot open log file %s: %s\n" % (g.log, e.strerror or e))
        return 1
    if g.strict:
        from .compat import set_strict

        set_strict(True)
    if g.version:
        print_version()
        return 0
    if not rest or rest[0] in ("help", "h"):
        if len(rest) > 1:
            return print_verb_help(rest[1])
        print_help()
        return 0
    verb, vargs = rest[0], rest[1:]
    if verb not in VERBS:
        log.report_error("No help topic for '%s'" % verb)
        return 3
    flags, nargs, usage, desc = VERBS[verb]
    flags = flags + (B(("help", "h"), "help"),)
    if verb not in ("exec", "ps"):  # their trailing args belong to the process
        vargs = reorder(flags, vargs)
    try:
        ns, pos = parse_flags(flags, vargs)
    except UsageError as e:
        sys.stderr.write("Incorrect Usage: %s\n\n" % e)
        print_verb_help(verb)
        return USAGE_ERROR
    if ns.help:
        return print_verb_help(verb)
    ns.args = pos
    if not _arity_ok(nargs, len(pos)):
        log.report_error(_arity_message(verb, nargs))
        return USAGE_ERROR
    try:
        return HANDLERS[verb](g, ns) or 0
    except PyruncError as e:
        msg = str(e)
        if verb in ("create", "run", "start", "exec", "restore") and not msg.startswith("pyrunc"):
            msg = "pyrunc %s failed: %s" % (verb, msg)
        log.report_error(msg)
        return _failure_code(verb, e.exit_code)
    except KeyboardInterrupt:
        return 130
    except OSError as e:
        where = "%s: " % e.filename if e.filename else ""
        log.report_error("pyrunc %s failed: %s%s" % (verb, where, e.strerror or e))
        return _failure_code(verb, 1)


# runc's `exec` ends every failure of its own with 255 (fatalWithCode), so
# that a caller tells it from the process's own exit status; the other
# verbs exit 1.
EXEC_FAILED = 255


def _failure_code(verb, code):
    return EXEC_FAILED if verb == "exec" else code


def _arity_ok(nargs, n):
    if isinstance(nargs, int):
        return n == nargs
    lo, hi = nargs
    return n >= lo and (hi is None or n <= hi)


def _arity_message(verb, nargs):
    if isinstance(nargs, int):
        return 'pyrunc: "%s" requires exactly %d argument(s)' % (verb, nargs)
    lo, hi = nargs
    if hi is None:
        return 'pyrunc: "%s" requires a minimum of %d argument(s)' % (verb, lo)
    return 'pyrunc: "%s" requires a maximum of %d argument(s)' % (verb, hi)


def print_version():
    try:
        from .security.seccomp import libseccomp_version
        sec = "\nlibseccomp: %s" % libseccomp_version()
    except Exception:  # seccomp support not built
        sec = ""
    try:
        from ._commit import COMMIT
    except ImportError:  # not built by setup.py (a source tree on sys.path)
        COMMIT = "unknown"
    # runc's layout: tools read "commit:" and "spec:" from lines 2 and 3
    sys.stdout.write("pyrunc version %s\ncommit: %s\nspec: %s\npython: %s%s\n" % (
        __version__, COMMIT, OCI_VERSION, sys.version.split()[0], sec))


def print_help():
    lines = ["NAME:", "   pyrunc - Open Container Initiative runtime (in Python)", "",
             "USAGE:", "   pyrunc [global options] command [command options] [arguments...]", "",
             "VERSION:", "   %s" % __version__, "", "COMMANDS:"]
    for verb in VERBS:
        lines.append("   %-10s  %s" % (verb, VERBS[verb][3]))
    lines += ["", "GLOBAL OPTIONS:"]
    lines += _flag_lines(GLOBAL_FLAGS)
    sys.stdout.write("\n".join(lines) + "\n")


def print_verb_help(verb):
    if verb not in VERBS:
        sys.stderr.write("No help topic for '%s'\n" % verb)
        return 3
    flags, _, usage, desc = VERBS[verb]
    lines = ["NAME:", "   pyrunc %s - %s" % (verb, desc), "", "USAGE:",
             "   pyrunc %s [command options] %s" % (verb, usage)]
    if flags:
        lines += ["", "OPTIONS:"] + _flag_lines(flags)
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _flag_lines(flags):
    out = []
    for f in flags:
        names = ", ".join(("--" if len(n) > 1 else "-") + n + (" value" if f.takes_value else "") for n in f.names)
        out.append("   %-30s %s" % (names, f.help))
    return out


# -- verbs --------------------------------------------------------------------

def _create_options(g, ns):
    from .container import CreateOptions

    try:
        preserve = int(ns.preserve_fds)
    except ValueError:
        raise PyruncError("invalid value %r for --preserve-fds" % ns.preserve_fds) from None
    return CreateOptions(pid_file=ns.pid_file, console_socket=ns.console_socket, no_pivot=ns.no_pivot,
                         no_new_keyring=ns.no_new_keyring, preserve_fds=preserve,
                         systemd_cgroup=g.systemd_cgroup,
                         rootless=g.rootless == "true" or (g.rootless == "auto" and os.geteuid() != 0),
                         one_shot=True)


def cmd_create(g, ns):
    from .container import Container

    Container.create(ns.args[0], ns.bundle or ".", g.root, _create_options(g, ns))


def cmd_run(g, ns):
    from .run import run

    return run(ns.args[0], ns.bundle or ".", g.root, _create_options(g, ns), detach=ns.detach, keep=ns.keep)


def cmd_start(g, ns):
    from .container import Container

    Container.load(ns.args[0], g.root).start()


def cmd_state(g, ns):
    from .container import Container
    from .jsonio import dumps_indent

    c = Container.load(ns.args[0], g.root, lock=False)
    sys.stdout.write(dumps_indent(c.state()))  # runc ends it without a newline


def cmd_kill(g, ns):
    from .container import Container
    from .signals import parse_signal

    sig = parse_signal(ns.args[1] if len(ns.args) > 1 else "SIGTERM")
    Container.load(ns.args[0], g.root).kill(sig, all_processes=ns.all)


def cmd_delete(g, ns):
    from .container import Container
    from .errors import ContainerNotFound

    try:
        c = Container.load(ns.args[0], g.root, damaged=True)
    except ContainerNotFound:
        if ns.force:
            return 0
        raise
    c.delete(force=ns.force)


def cmd_list(g, ns):
    from .container import Container
    from .state import list_ids

    states = []
    for cid in list_ids(g.root):
        try:
            c = Container.load(cid, g.root, lock=False, damaged=True)
            s = c.state()
        except PyruncError:
            continue  # gone meanwhile
        if c.damage is not None:
            s["status"] = "damaged"  # listed, not hidden: `state ID` says what is wrong
        s["owner"] = _owner_name(c.dir.path)  # `list` names the owner, `state` does not (runc)
        states.append(s)
    if ns.quiet:
        for s in states:
            sys.stdout.write(s["id"] + "\n")
        return 0
    if ns.format == "json":
        from .jsonio import dumps

        sys.stdout.write(dumps(states or None) + "\n")
        return 0
    if ns.format != "table":
        raise PyruncError("invalid format option")
    rows = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")]
    for s in states:
        rows.append((s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s["owner"]))
    sys.stdout.write(format_table(rows))


def _owner_name(path):
    try:
        uid = os.stat(path).st_uid
    except OSError:
        return ""
    from .passwd import entry_for_uid
    entry = entry_for_uid(uid)
    return entry[0] if entry else "#%d" % uid


def format_table(rows):
    """Columns as Go's tabwriter(minwidth 12, padding 3) lays them out."""
    widths = [max(12, max(len(r[i]) for r in rows) + 3) for i in range(len(rows[0]) - 1)]
    out = []
    for r in rows:
        out.append("".join(c.ljust(w) for c, w in zip(r, widths)) + r[-1])
    return "\n".join(out) + "\n"


def cmd_spec(g, ns):
    from .defaults import write_spec

    write_spec(ns.bundle or ".", rootless=ns.rootless, network=ns.network)


def cmd_features(g, ns):
    from .features import features
    from .jsonio import dumps_indent

    sys.stdout.write(dumps_indent(features(), "    ") + "\n")


def cmd_exec(g, ns):
    from .cli_requests import exec_request
    from .execute import exec_in

    cid, request = exec_request(ns)
    return exec_in(cid, g.root, request)


def cmd_pause(g, ns):
    from .container import Container

    Container.load(ns.args[0], g.root).pause()


def cmd_resume(g, ns):
    from .container import Container

    Container.load(ns.args[0], g.root).resume()


def cmd_ps(g, ns):
    from .container import Container
    from .ps import ps

    return ps(Container.load(ns.args[0], g.root, lock=False), sys.stdout, ns.format, ns.args[1:])


def cmd_events(g, ns):
    from .cli_requests import parse_duration
    from .container import Container
    from .events import events
    from .jsonio import dumps

    def emit(event):
        sys.stdout.write(dumps(event) + "\n")
        sys.stdout.flush()

    c = Container.load(ns.args[0], g.root, lock=False)
    return events(c, emit, stats_only=ns.stats, interval=0 if ns.stats else parse_duration(ns.interval))


def cmd_update(g, ns):
    from .cli_requests import update_document
    from .container import Container
    from .update import update

    c = Container.load(ns.args[0], g.root)
    update(c, update_document(ns, sys.stdin), ns.l3_cache_schema or "", ns.mem_bw_schema or "")


def _criu_options(g, ns):
    from .criu_setup import CriuOptions

    kw = {k: getattr(ns, k, None) for k in CriuOptions.__slots__}
    if getattr(ns, "status_fd", None) is not None:
        try:
            kw["status_fd"] = int(ns.status_fd)
        except ValueError:
            raise PyruncError("invalid value %r for --status-fd" % ns.status_fd) from None
    kw["criu"] = g.criu
    return CriuOptions(**kw)


def cmd_checkpoint(g, ns):
    from .checkpoint import checkpoint

    checkpoint(ns.args[0], g.root, _criu_options(g, ns))


def cmd_restore(g, ns):
    from .restore import restore

    ns.preserve_fds = "0"
    ns.no_new_keyring = False
    return restore(ns.args[0], ns.bundle or ".", g.root, _create_options(g, ns), _criu_options(g, ns),
                   detach=ns.detach, no_subreaper=ns.no_subreaper)


HANDLERS = {
    "create": cmd_create, "run": cmd_run, "start": cmd_start, "state": cmd_state,
    "kill": cmd_kill, "delete": cmd_delete, "list": cmd_list, "spec": cmd_spec,
    "features": cmd_features, "exec": cmd_exec, "pause": cmd_pause, "resume": cmd_resume,
    "ps": cmd_ps, "events": cmd_events, "update": cmd_update,
    "checkpoint": cmd_checkpoint, "restore": cmd_restore,
}

def exit_now(code):
    """End the process with `code` without the interpreter's tear-down.

    Every verb is a short-lived process: finalization (module teardown, a
    last gc pass over everything the imports made) costs ~2.5 ms of CPU and
    does nothing useful.  pyrunc writes its files and logs with os.write or
    in with-blocks, so the only buffers left to flush are stdout/stderr."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            if stream is sys.stdout and not code:
                code = 120  # what the interpreter exits with when stdout cannot be flushed
    os._exit(code if isinstance(code, int) else 1)


if __name__ == "__main__":
    exit_now(main())
