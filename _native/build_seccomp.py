"""cffi build script for pyrunc._native_seccomp: libseccomp, the library runc
and crun build their filters with, plus pidfd_getfd(2) for the notify fd
handoff.

Its own module so that only containers with `linux.seccomp` pay for loading
libseccomp.  The prototypes below are declared here rather than taken from
<seccomp.h>: hosts that have the runtime library but not the -dev package
still build, and the link names the soname (`-l:libseccomp.so.2`) for the
same reason.  The declarations follow libseccomp's stable ABI (2.5+); the
numeric constants live in pyrunc/security/seccomp_*.py and a unit test
checks them against <seccomp.h> where it is installed.

Every function returns what libseccomp returns (negative errno on failure,
NULL for a failed seccomp_init); pyrunc/security/seccomp_filter.py decides.
"""
from cffi import FFI

ffi = FFI()

_DECLS = """
    typedef void *scmp_filter_ctx;

    struct scmp_version {
        unsigned int major;
        unsigned int minor;
        unsigned int micro;
    };

    /* enum scmp_compare is an int-sized enum: `unsigned int op` is the
       same layout. */
    struct scmp_arg_cmp {
        unsigned int arg;
        unsigned int op;
        uint64_t datum_a;
        uint64_t datum_b;
    };

    struct seccomp_data {
        int nr;
        uint32_t arch;
        uint64_t instruction_pointer;
        uint64_t args[6];
    };

    struct seccomp_notif {
        uint64_t id;
        uint32_t pid;
        uint32_t flags;
        struct seccomp_data data;
    };

    struct seccomp_notif_resp {
        uint64_t id;
        int64_t val;
        int32_t error;
        uint32_t flags;
    };

    const struct scmp_version *seccomp_version(void);
    unsigned int seccomp_api_get(void);

    scmp_filter_ctx seccomp_init(uint32_t def_action);
    void seccomp_release(scmp_filter_ctx ctx);
    int seccomp_attr_set(scmp_filter_ctx ctx, int attr, uint32_t value);
    int seccomp_attr_get(scmp_filter_ctx ctx, int attr, uint32_t *value);

    uint32_t seccomp_arch_resolve_name(const char *arch_name);
    uint32_t seccomp_arch_native(void);
    int seccomp_arch_add(scmp_filter_ctx ctx, uint32_t arch_token);
    int seccomp_arch_exist(const scmp_filter_ctx ctx, uint32_t arch_token);

    int seccomp_syscall_resolve_name(const char *name);
    int seccomp_syscall_resolve_name_arch(uint32_t arch_token, const char *name);
    char *seccomp_syscall_resolve_num_arch(uint32_t arch_token, int num);

    int seccomp_rule_add_array(scmp_filter_ctx ctx, uint32_t action,
                               int syscall, unsigned int arg_cnt,
                               const struct scmp_arg_cmp *arg_array);

    int seccomp_load(const scmp_filter_ctx ctx);
    int seccomp_export_bpf(const scmp_filter_ctx ctx, int fd);

    int seccomp_notify_alloc(struct seccomp_notif **req,
                             struct seccomp_notif_resp **resp);
    void seccomp_notify_free(struct seccomp_notif *req,
                             struct seccomp_notif_resp *resp);
    int seccomp_notify_receive(int fd, struct seccomp_notif *req);
    int seccomp_notify_respond(int fd, struct seccomp_notif_resp *resp);
    int seccomp_notify_id_valid(int fd, uint64_t id);
    int seccomp_notify_fd(const scmp_filter_ctx ctx);

    void free(void *ptr);
"""

ffi.cdef(_DECLS + """
    int pyrunc_pidfd_getfd(int pidfd, int targetfd);
    int pyrunc_seccomp_set_filter(unsigned int flags, unsigned short len, const void *insns);
""")

ffi.set_source(
    "pyrunc._native_seccomp",
    r"""
    #include <stdint.h>
    #include <stdlib.h>
    #include <unistd.h>
    #include <sys/syscall.h>

    #ifndef SYS_pidfd_getfd
    #define SYS_pidfd_getfd 438
    #endif
    """
    + "\n".join(
        # the same declarations, as externs (free comes from stdlib.h)
        line for line in _DECLS.splitlines() if "void free(" not in line
    )
    + r"""

    static int pyrunc_pidfd_getfd(int pidfd, int targetfd)
    {
        return (int)syscall(SYS_pidfd_getfd, pidfd, targetfd, 0);
    }

    /* seccomp(SECCOMP_SET_MODE_FILTER, flags, prog): a program libseccomp
       exported, with pyrunc's -ENOSYS prefix (seccomp_filter.py) */
    static int pyrunc_seccomp_set_filter(unsigned int flags, unsigned short len, const void *insns)
    {
        struct { unsigned short len; const void *filter; } prog = { len, insns };
        return (int)syscall(SYS_seccomp, 1, flags, &prog);
    }
    """,
    extra_link_args=["-l:libseccomp.so.2"],
)

if __name__ == "__main__":
    ffi.compile(verbose=True)
