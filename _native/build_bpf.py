"""cffi build script for pyrunc._native_bpf: the bpf(2) calls that cgroup v2
device control needs (load a BPF_PROG_TYPE_CGROUP_DEVICE program, attach it
to a cgroup, query what is attached, detach).

A separate module from _native_core so that only `create`/`update` on a v2
host pay for loading it.  Every wrapper returns the raw syscall result (-1
with errno set on failure); pyrunc/cgroups/ebpf.py turns that into OSError.
"""
from cffi import FFI

ffi = FFI()

ffi.cdef(
    """
    int pyrunc_bpf_prog_load(uint32_t prog_type, const void *insns,
                             uint32_t insn_cnt, const char *license,
                             char *log_buf, uint32_t log_size);
    int pyrunc_bpf_prog_attach(int target_fd, int prog_fd,
                               uint32_t attach_type, uint32_t flags,
                               int replace_fd);
    int pyrunc_bpf_prog_detach(int target_fd, int prog_fd,
                               uint32_t attach_type);
    int pyrunc_bpf_prog_query(int target_fd, uint32_t attach_type,
                              uint32_t *attach_flags, uint32_t *prog_ids,
                              uint32_t *prog_cnt);
    int pyrunc_bpf_prog_get_fd_by_id(uint32_t id);
    """
)

ffi.set_source(
    "pyrunc._native_bpf",
    r"""
    #include <stdint.h>
    #include <string.h>
    #include <unistd.h>
    #include <sys/syscall.h>
    #include <linux/bpf.h>

    #ifndef BPF_F_REPLACE
    #define BPF_F_REPLACE (1U << 2)
    #endif

    static int pyrunc_bpf(int cmd, union bpf_attr *attr)
    {
        return (int)syscall(SYS_bpf, cmd, attr, sizeof *attr);
    }

    static int pyrunc_bpf_prog_load(uint32_t prog_type, const void *insns,
                                    uint32_t insn_cnt, const char *license,
                                    char *log_buf, uint32_t log_size)
    {
        union bpf_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.prog_type = prog_type;
        attr.insns = (uint64_t)(uintptr_t)insns;
        attr.insn_cnt = insn_cnt;
        attr.license = (uint64_t)(uintptr_t)license;
        if (log_buf && log_size) {
            log_buf[0] = 0;
            attr.log_buf = (uint64_t)(uintptr_t)log_buf;
            attr.log_size = log_size;
            attr.log_level = 1;
        }
        return pyrunc_bpf(BPF_PROG_LOAD, &attr);
    }

    static int pyrunc_bpf_prog_attach(int target_fd, int prog_fd,
                                      uint32_t attach_type, uint32_t flags,
                                      int replace_fd)
    {
        union bpf_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.target_fd = target_fd;
        attr.attach_bpf_fd = prog_fd;
        attr.attach_type = attach_type;
        attr.attach_flags = flags;
        if (flags & BPF_F_REPLACE)
            attr.replace_bpf_fd = replace_fd;
        return pyrunc_bpf(BPF_PROG_ATTACH, &attr);
    }

    static int pyrunc_bpf_prog_detach(int target_fd, int prog_fd,
                                      uint32_t attach_type)
    {
        union bpf_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.target_fd = target_fd;
        attr.attach_bpf_fd = prog_fd;
        attr.attach_type = attach_type;
        return pyrunc_bpf(BPF_PROG_DETACH, &attr);
    }

    /* On entry *prog_cnt is the capacity of prog_ids; on return the number
       of programs attached (which may exceed the capacity: ENOSPC). */
    static int pyrunc_bpf_prog_query(int target_fd, uint32_t attach_type,
                                     uint32_t *attach_flags,
                                     uint32_t *prog_ids, uint32_t *prog_cnt)
    {
        union bpf_attr attr;
        int rc;
        memset(&attr, 0, sizeof attr);
        attr.query.target_fd = target_fd;
        attr.query.attach_type = attach_type;
        attr.query.prog_ids = (uint64_t)(uintptr_t)prog_ids;
        attr.query.prog_cnt = *prog_cnt;
        rc = pyrunc_bpf(BPF_PROG_QUERY, &attr);
        *attach_flags = attr.query.attach_flags;
        *prog_cnt = attr.query.prog_cnt;
        return rc;
    }

    static int pyrunc_bpf_prog_get_fd_by_id(uint32_t id)
    {
        union bpf_attr attr;
        memset(&attr, 0, sizeof attr);
        attr.prog_id = id;
        return pyrunc_bpf(BPF_PROG_GET_FD_BY_ID, &attr);
    }
    """,
)

if __name__ == "__main__":
    ffi.compile(verbose=True)
