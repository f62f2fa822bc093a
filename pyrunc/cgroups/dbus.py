"""A minimal synchronous D-Bus client: what the systemd cgroup driver needs.

Speaks the wire protocol directly over the system bus's unix socket
(EXTERNAL auth, little-endian messages, the basic and container types),
so --systemd-cgroup needs no third-party package.  Imported only when
the systemd driver is used.

    bus = Bus.system()
    reply = bus.call("org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                     "org.freedesktop.systemd1.Manager", "GetUnit", "s", ["x.scope"])
    bus.add_match("type='signal',member='JobRemoved'")
    msg = bus.next_signal(timeout_s)     # (member, path, args) or None

Values: Python ints/str/bool/bytes/lists/tuples; a variant is a
(signature, value) pair.  D-Bus errors raise DBusError (its .name is the
error name, e.g. org.freedesktop.systemd1.NoSuchUnit).
"""
import os
import select
import socket
import struct

SYSTEM_BUS = "/run/dbus/system_bus_socket"
SYSTEMD_PRIVATE = "/run/systemd/private"  # systemd's own peer-to-peer socket

CALL, RETURN, ERROR, SIGNAL = 1, 2, 3, 4
_FIXED = {"y": ("B", 1), "b": ("I", 4), "n": ("h", 2), "q": ("H", 2), "i": ("i", 4),
          "u": ("I", 4), "x": ("q", 8), "t": ("Q", 8), "d": ("d", 8), "h": ("I", 4)}
_ALIGN = {"s": 4, "o": 4, "g": 1, "a": 4, "(": 8, "{": 8, "v": 1}
# header field codes and their types
_FIELDS = {1: "o", 2: "s", 3: "s", 4: "s", 5: "u", 6: "s", 7: "s", 8: "g"}


class DBusError(OSError):
    def __init__(self, name, message=""):
        super().__init__("%s: %s" % (name, message) if message else name)
        self.name = name


def split_signature(sig):
    """'sa(sv)b' -> ['s', 'a(sv)', 'b']: the complete types in order."""
    out, i = [], 0
    while i < len(sig):
        j = _type_end(sig, i)
        out.append(sig[i:j])
        i = j
    return out


def _type_end(sig, i):
    c = sig[i]
    if c == "a":
        return _type_end(sig, i + 1)
    if c in "({":
        close = ")" if c == "(" else "}"
        depth, j = 0, i
        while j < len(sig):
            if sig[j] in "({":
                depth += 1
            elif sig[j] in ")}":
                depth -= 1
                if depth == 0:
                    if sig[j] != close:
                        break
                    return j + 1
            j += 1
        raise ValueError("bad D-Bus signature %r" % sig)
    if c in _FIXED or c in "sogv":
        return i + 1
    raise ValueError("bad D-Bus signature %r" % sig)


# -- marshalling ------------------------------------------------------------------
class _Writer:
    __slots__ = ("buf",)

    def __init__(self):
        self.buf = bytearray()

    def pad(self, n):
        self.buf.extend(b"\0" * (-len(self.buf) % n))

    def put(self, t, v):
        c = t[0]
        if c in _FIXED:
            fmt, size = _FIXED[c]
            self.pad(size)
            self.buf.extend(struct.pack("<" + fmt, int(v) if c != "d" else float(v)))
        elif c in "so":
            data = v.encode()
            self.pad(4)
            self.buf.extend(struct.pack("<I", len(data)) + data + b"\0")
        elif c == "g":
            data = v.encode()
            self.buf.extend(bytes([len(data)]) + data + b"\0")
        elif c == "v":
            sig, value = v
            self.put("g", sig)
            self.put(sig, value)
        elif c == "a":
            self._array(t[1:], v)
        else:  # struct or dict entry
            self.pad(8)
            for sub, item in zip(split_signature(t[1:-1]), v):
                self.put(sub, item)

    def _array(self, elem, items):
        self.pad(4)
        at = len(self.buf)
        self.buf.extend(b"\0\0\0\0")
        self.pad(_FIXED.get(elem[0], (None, _ALIGN.get(elem[0], 1)))[1])
        start = len(self.buf)
        if elem == "y":
            self.buf.extend(bytes(items))
        else:
            if elem[0] == "{" and isinstance(items, dict):
                items = items.items()
            for item in items:
                self.put(elem, item)
        struct.pack_into("<I", self.buf, at, len(self.buf) - start)


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf, pos=0):
        self.buf, self.pos = buf, pos

    def align(self, n):
        self.pos += -self.pos % n

    def get(self, t):
        c = t[0]
        if c in _FIXED:
            fmt, size = _FIXED[c]
            self.align(size)
            (v,) = struct.unpack_from("<" + fmt, self.buf, self.pos)
            self.pos += size
            return bool(v) if c == "b" else v
        if c in "so":
            n = self.get("u")
            v = bytes(self.buf[self.pos:self.pos + n]).decode()
            self.pos += n + 1
            return v
        if c == "g":
            n = self.buf[self.pos]
            v = bytes(self.buf[self.pos + 1:self.pos + 1 + n]).decode()
            self.pos += n + 2
            return v
        if c == "v":
            sig = self.get("g")
            return (sig, self.get(sig))
        if c == "a":
            n = self.get("u")
            elem = t[1:]
            self.align(_FIXED.get(elem[0], (None, _ALIGN.get(elem[0], 1)))[1])
            end = self.pos + n
            if elem == "y":
                v = bytes(self.buf[self.pos:end])
                self.pos = end
                return v
            out = []
            while self.pos < end:
                at = self.pos
                out.append(self.get(elem))
                if self.pos <= at:
                    raise ValueError("array element of %r reads nothing" % elem)
            return dict(out) if elem[0] == "{" else out
        self.align(8)
        return tuple(self.get(sub) for sub in split_signature(t[1:-1]))

    def get_all(self, sig):
        return [self.get(t) for t in split_signature(sig)]


def encode_message(msg_type, serial, fields, sig="", args=(), flags=0):
    body = _Writer()
    for t, v in zip(split_signature(sig), args):
        body.put(t, v)
    if sig:
        fields = dict(fields)
        fields[8] = sig
    head = _Writer()
    head.buf.extend(struct.pack("<cBBBII", b"l", msg_type, flags, 1, len(body.buf), serial))
    head.put("a(yv)", [(code, (_FIELDS[code], value)) for code, value in sorted(fields.items())])
    head.pad(8)
    return bytes(head.buf + body.buf)


MAX_MESSAGE = 128 << 20  # the D-Bus specification's limit


def decode_message(data):
    """(type, serial, {field code: value}, args) of one complete message;
    DBusError for anything malformed (never another exception)."""
    if data[:1] != b"l":
        raise DBusError("org.freedesktop.DBus.Error.NotSupported", "big-endian message")
    try:
        r = _Reader(data, 12)
        fields = {code: value[1] for code, value in r.get("a(yv)")}
        r.align(8)
        args = r.get_all(fields.get(8, ""))
        if r.pos > len(data):
            raise ValueError("message shorter than its contents")
        return data[1], struct.unpack_from("<I", data, 8)[0], fields, args
    except (struct.error, ValueError, IndexError, KeyError, TypeError, RecursionError) as e:
        # UnicodeDecodeError is a ValueError
        raise DBusError("org.freedesktop.DBus.Error.InvalidArgs", "malformed message from the bus: %s" % e) from None


def message_length(head):
    """Total length of the message whose first 16 bytes are `head`."""
    body_len, _serial, fields_len = struct.unpack_from("<III", head, 4)
    total = 16 + fields_len + (-(16 + fields_len) % 8) + body_len
    if total > MAX_MESSAGE:
        raise DBusError("org.freedesktop.DBus.Error.LimitsExceeded", "message of %d bytes from the bus" % total)
    return total


# -- the connection ---------------------------------------------------------------
class Bus:
    __slots__ = ("sock", "serial", "pending", "timeout", "peer")

    def __init__(self, path, hello=True, timeout=30.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.timeout = timeout
        self.serial = 0
        self.pending = []  # signals read while waiting for a reply
        self.peer = not hello  # a peer-to-peer socket: no bus daemon to greet
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(path)
            self._auth()
            if hello:
                self.call("org.freedesktop.DBus", "/org/freedesktop/DBus",
                          "org.freedesktop.DBus", "Hello")
        except BaseException:
            self.sock.close()
            raise

    @classmethod
    def system(cls):
        """The system bus; systemd's private socket when no bus daemon runs."""
        path = os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", "")
        path = path[len("unix:path="):] if path.startswith("unix:path=") else SYSTEM_BUS
        if os.path.exists(path):
            return cls(path)
        return cls(SYSTEMD_PRIVATE, hello=False)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _auth(self):
        uid = str(os.geteuid()).encode().hex()
        self.sock.sendall(b"\0AUTH EXTERNAL " + uid.encode() + b"\r\n")
        line = self._auth_line()
        if not line.startswith(b"OK "):
            raise DBusError("org.freedesktop.DBus.Error.AuthFailed", line.decode(errors="replace"))
        self.sock.sendall(b"BEGIN\r\n")

    def _auth_line(self):
        data = b""
        while not data.endswith(b"\r\n"):
            chunk = self.sock.recv(1)
            if not chunk:
                raise DBusError("org.freedesktop.DBus.Error.NoReply", "bus closed during auth")
            data += chunk
        return data

    def _recv_exact(self, n):
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise DBusError("org.freedesktop.DBus.Error.Disconnected", "bus closed")
            out.extend(chunk)
        return bytes(out)

    def _read_message(self):
        head = self._recv_exact(16)
        return decode_message(head + self._recv_exact(message_length(head) - 16))

    def call(self, dest, path, iface, member, sig="", args=()):
        """Call a method and return its reply's arguments (a list)."""
        self.serial += 1
        serial = self.serial
        fields = {1: path, 3: member}
        if iface:
            fields[2] = iface
        if dest:
            fields[6] = dest
        self.sock.sendall(encode_message(CALL, serial, fields, sig, args))
        while True:
            mtype, _s, fields, args = self._read_message()
            if mtype == SIGNAL:
                self.pending.append((fields.get(3), fields.get(1), args))
            elif fields.get(5) == serial:
                if mtype == ERROR:
                    raise DBusError(fields.get(4, "?"), args[0] if args and isinstance(args[0], str) else "")
                return args

    def add_match(self, rule):
        self.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                  "AddMatch", "s", [rule])

    def next_signal(self, timeout):
        """The next signal (member, path, args), or None after `timeout` s."""
        if self.pending:
            return self.pending.pop(0)
        import time

        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                return None
            mtype, _s, fields, args = self._read_message()
            if mtype == SIGNAL:
                return (fields.get(3), fields.get(1), args)
