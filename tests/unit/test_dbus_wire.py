"""pyrunc.cgroups.dbus reading what the bus sends: a malformed or
oversized message is one DBusError (an OSError the systemd driver turns
into one line), never a traceback, a hang or a 4 GiB allocation."""
import struct

import pytest

from pyrunc.cgroups import dbus


def _message(sig, body):
    """A METHOD_RETURN whose header claims `sig` for `body`."""
    head = dbus._Writer()
    head.buf.extend(struct.pack("<cBBBII", b"l", dbus.RETURN, 0, 1, len(body), 7))
    head.put("a(yv)", [(5, ("u", 1)), (8, ("g", sig))])
    head.pad(8)
    return bytes(head.buf) + body


def test_a_well_formed_message_decodes():
    msg = dbus.encode_message(dbus.RETURN, 3, {5: 1}, "sa(sv)", ["x", [("k", ("u", 5))]])
    assert dbus.decode_message(msg)[3] == ["x", [("k", ("u", 5))]]


@pytest.mark.parametrize("sig,body", [
    ("s", struct.pack("<I", 1000) + b"ab"),            # string longer than the body
    ("s", struct.pack("<I", 2) + b"\xff\xfe\0"),       # not UTF-8
    ("u", b"\1"),                                      # truncated integer
    ("a(", b"\0" * 8),                                 # bad signature
    ("a()", struct.pack("<I", 8) + b"\0" * 12),        # an element that reads nothing
    ("v", b"\1z\0\0"),                                 # variant of an unknown type
])
def test_malformed_message_is_one_dbus_error(sig, body):
    with pytest.raises(dbus.DBusError):
        dbus.decode_message(_message(sig, body))


def test_oversized_message_is_refused_before_reading():
    head = struct.pack("<cBBBIII", b"l", dbus.RETURN, 0, 1, 0xFFFFFFF0, 1, 16)
    with pytest.raises(dbus.DBusError):
        dbus.message_length(head)
