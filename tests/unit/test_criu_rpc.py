"""The hand-written proto2 encoding of CRIU's RPC messages (criu_rpc.py),
against byte strings worked out from the protobuf wire format spec; CRIU
itself is the end-to-end oracle in tests/integration/test_checkpoint.py."""
from pyrunc import criu_rpc as rpc


def test_varint_fields_and_strings():
    # criu_req{type=DUMP(1)}: key (1<<3|0)=0x08, value 1
    assert rpc.encode(rpc.REQ, {"type": rpc.DUMP}) == b"\x08\x01"
    # opts.images_dir_fd=300 -> key 0x08, varint 300 = ac 02
    assert rpc.encode(rpc.OPTS, {"images_dir_fd": 300}) == b"\x08\xac\x02"
    # opts.log_file (10, length-delimited): key 0x52
    assert rpc.encode(rpc.OPTS, {"log_file": "dump.log"}) == b"\x52\x08dump.log"
    # a field number above 15 takes a two-byte key: orphan_pts_master = 50 -> (50<<3) = 400 = 90 03
    assert rpc.encode(rpc.OPTS, {"orphan_pts_master": True}) == b"\x90\x03\x01"


def test_negative_int32_is_ten_bytes():
    # proto2 int32 -1: sign-extended to 64 bits
    assert rpc.encode(rpc.OPTS, {"images_dir_fd": -1}) == b"\x08" + b"\xff" * 9 + b"\x01"
    assert rpc.decode(rpc.OPTS, b"\x08" + b"\xff" * 9 + b"\x01") == {"images_dir_fd": -1}


def test_repeated_and_nested_messages():
    data = rpc.encode(rpc.OPTS, {"ext_mnt": [{"key": "/a", "val": "/b"}, {"key": "/c", "val": "/d"}],
                                 "external": ["net[5]:extRootNetNS"]})
    # ext_mnt = 23: key (23<<3|2) = 186 = ba 01; each entry: 0a 02 '/a' 12 02 '/b'
    entry = b"\x0a\x02/a\x12\x02/b"
    assert data.startswith(b"\xba\x01" + bytes([len(entry)]) + entry)
    req = rpc.encode(rpc.REQ, {"type": rpc.RESTORE, "opts": {"pid": 7}})
    assert req == b"\x08\x02\x12\x02\x10\x07"


def test_decode_response_skips_unknown_fields():
    resp = (b"\x08\x06" b"\x10\x01"                      # type NOTIFY, success
            b"\x2a\x0f\x0a\x0bpost-dump!!\x10\x2a"       # notify{script, pid 42}
            b"\xf8\x07\x05"                              # unknown varint field 127
            b"\x31" + b"\0" * 8 +                        # unknown fixed64 field 6
            b"\x65" + b"\0" * 4 +                        # unknown fixed32 field 12
            b"\x3d" + b"\0" * 4)                         # cr_errno (7) with a wire type it never has
    doc = rpc.decode(rpc.RESP, resp)
    assert doc == {"type": rpc.NOTIFY, "success": True, "notify": {"script": "post-dump!!", "pid": 42}}


def test_version_number():
    resp = rpc.decode(rpc.RESP, rpc.encode(rpc.RESP, {"type": rpc.VERSION, "success": True,
                                                      "version": {"major_number": 4, "minor_number": 2}}))
    assert rpc.version_number(resp) == 40200
