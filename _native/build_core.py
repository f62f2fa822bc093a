"""cffi build script for pyrunc._native_core: thin wrappers over the Linux
syscalls that Python 3.11's os module lacks.

Only syscall plumbing lives here; every decision is made in Python.  Each
wrapper returns the raw syscall result (-1 with errno set on failure); the
Python side (pyrunc/linux.py) turns that into OSError.
"""
from cffi import FFI

ffi = FFI()

ffi.cdef(
    """
    /* constants: their values come from the C headers at build time */
    static const long CLONE_NEWTIME;
    static const long CLONE_NEWNS;
    static const long CLONE_NEWCGROUP;
    static const long CLONE_NEWUTS;
    static const long CLONE_NEWIPC;
    static const long CLONE_NEWUSER;
    static const long CLONE_NEWPID;
    static const long CLONE_NEWNET;
    static const long MS_RDONLY;
    static const long MS_NOSUID;
    static const long MS_NODEV;
    static const long MS_NOEXEC;
    static const long MS_SYNCHRONOUS;
    static const long MS_REMOUNT;
    static const long MS_MANDLOCK;
    static const long MS_DIRSYNC;
    static const long MS_NOSYMFOLLOW;
    static const long MS_NOATIME;
    static const long MS_NODIRATIME;
    static const long MS_BIND;
    static const long MS_MOVE;
    static const long MS_REC;
    static const long MS_SILENT;
    static const long MS_POSIXACL;
    static const long MS_UNBINDABLE;
    static const long MS_PRIVATE;
    static const long MS_SLAVE;
    static const long MS_SHARED;
    static const long MS_RELATIME;
    static const long MS_I_VERSION;
    static const long MS_STRICTATIME;
    static const long MS_LAZYTIME;
    static const long MNT_DETACH;
    static const long UMOUNT_NOFOLLOW;
    static const long PR_SET_PDEATHSIG;
    static const long PR_SET_DUMPABLE;
    static const long PR_SET_KEEPCAPS;
    static const long PR_CAPBSET_READ;
    static const long PR_CAPBSET_DROP;
    static const long PR_SET_NO_NEW_PRIVS;
    static const long PR_SET_CHILD_SUBREAPER;
    static const long PR_CAP_AMBIENT;
    static const long PR_CAP_AMBIENT_RAISE;
    static const long PR_CAP_AMBIENT_CLEAR_ALL;

    int unshare(int flags);
    int setns(int fd, int nstype);
    int mount(const char *source, const char *target, const char *fstype,
              unsigned long flags, const void *data);
    int umount2(const char *target, int flags);
    int sethostname(const char *name, size_t len);
    int setdomainname(const char *name, size_t len);
    int chroot(const char *path);

    int pyrunc_prctl(int option, unsigned long a2, unsigned long a3,
                     unsigned long a4, unsigned long a5);
    int pyrunc_pivot_root(const char *new_root, const char *put_old);
    int pyrunc_openat2(int dirfd, const char *path, int flags, int mode,
                       unsigned long long resolve);
    int pyrunc_capget(int pid, uint32_t out[6]);
    int pyrunc_capset(const uint32_t data[6]);
    int pyrunc_open_tree(int dirfd, const char *path, unsigned int flags);
    int pyrunc_move_mount(int from_dirfd, const char *from_path, int to_dirfd,
                          const char *to_path, unsigned int flags);
    int pyrunc_mount_setattr(int dirfd, const char *path, unsigned int flags,
                             uint64_t attr_set, uint64_t attr_clr,
                             uint64_t propagation, uint64_t userns_fd);
    int pyrunc_fsopen(const char *fsname, unsigned int flags);
    int pyrunc_fsconfig(int fd, unsigned int cmd, const char *key,
                        const char *value, int aux);
    int pyrunc_fsmount(int fd, unsigned int flags, unsigned int attr_flags);
    long pyrunc_keyctl_join(const char *name);
    long pyrunc_fstatfs_type(int fd);
    int pyrunc_personality(unsigned long persona);
    int pyrunc_ioprio_set(int which, int who, int ioprio);
    int pyrunc_sched_setattr(int pid, uint32_t policy, uint64_t flags,
                             int32_t nice, uint32_t priority,
                             uint64_t runtime, uint64_t deadline,
                             uint64_t period);
    long pyrunc_set_mempolicy(int mode, const unsigned long *nodemask,
                              unsigned long maxnode);
    """
)

ffi.set_source(
    "pyrunc._native_core",
    r"""
    #define _GNU_SOURCE
    #include <sched.h>
    #include <stdint.h>
    #include <unistd.h>
    #include <errno.h>
    #include <sys/mount.h>
    #include <sys/vfs.h>
    #include <sys/prctl.h>
    #include <sys/personality.h>
    #include <sys/syscall.h>
    #include <linux/capability.h>

    #ifndef CLONE_NEWTIME
    #define CLONE_NEWTIME 0x00000080
    #endif
    #ifndef MS_NOSYMFOLLOW
    #define MS_NOSYMFOLLOW 256
    #endif

    #ifndef SYS_openat2
    #define SYS_openat2 437
    #endif
    #ifndef SYS_open_tree
    #define SYS_open_tree 428
    #endif
    #ifndef SYS_move_mount
    #define SYS_move_mount 429
    #endif
    #ifndef SYS_mount_setattr
    #define SYS_mount_setattr 442
    #endif
    #ifndef SYS_fsopen
    #define SYS_fsopen 430
    #endif
    #ifndef SYS_fsconfig
    #define SYS_fsconfig 431
    #endif
    #ifndef SYS_fsmount
    #define SYS_fsmount 432
    #endif

    static int pyrunc_prctl(int option, unsigned long a2, unsigned long a3,
                            unsigned long a4, unsigned long a5)
    {
        return prctl(option, a2, a3, a4, a5);
    }

    static int pyrunc_pivot_root(const char *new_root, const char *put_old)
    {
        return (int)syscall(SYS_pivot_root, new_root, put_old);
    }

    struct pyrunc_open_how { uint64_t flags, mode, resolve; };

    static int pyrunc_openat2(int dirfd, const char *path, int flags, int mode,
                              unsigned long long resolve)
    {
        struct pyrunc_open_how how = { (uint64_t)(unsigned)flags,
                                       (uint64_t)mode, resolve };
        return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    }

    /* Capability sets as 6 words: effective[2], permitted[2], inheritable[2]. */
    static int pyrunc_capget(int pid, uint32_t out[6])
    {
        struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, pid };
        struct __user_cap_data_struct data[2];
        int rc = (int)syscall(SYS_capget, &hdr, data);
        for (int i = 0; i < 2; i++) {
            out[i] = data[i].effective;
            out[2 + i] = data[i].permitted;
            out[4 + i] = data[i].inheritable;
        }
        return rc;
    }

    static int pyrunc_capset(const uint32_t in[6])
    {
        struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
        struct __user_cap_data_struct data[2];
        for (int i = 0; i < 2; i++) {
            data[i].effective = in[i];
            data[i].permitted = in[2 + i];
            data[i].inheritable = in[4 + i];
        }
        return (int)syscall(SYS_capset, &hdr, data);
    }

    static int pyrunc_open_tree(int dirfd, const char *path, unsigned int flags)
    {
        return (int)syscall(SYS_open_tree, dirfd, path, flags);
    }

    static int pyrunc_move_mount(int from_dirfd, const char *from_path,
                                 int to_dirfd, const char *to_path,
                                 unsigned int flags)
    {
        return (int)syscall(SYS_move_mount, from_dirfd, from_path, to_dirfd,
                            to_path, flags);
    }

    struct pyrunc_mount_attr { uint64_t attr_set, attr_clr, propagation, userns_fd; };

    static int pyrunc_mount_setattr(int dirfd, const char *path,
                                    unsigned int flags, uint64_t attr_set,
                                    uint64_t attr_clr, uint64_t propagation,
                                    uint64_t userns_fd)
    {
        struct pyrunc_mount_attr attr = { attr_set, attr_clr, propagation, userns_fd };
        return (int)syscall(SYS_mount_setattr, dirfd, path, flags, &attr,
                            sizeof attr);
    }

    static int pyrunc_fsopen(const char *fsname, unsigned int flags)
    {
        return (int)syscall(SYS_fsopen, fsname, flags);
    }

    static int pyrunc_fsconfig(int fd, unsigned int cmd, const char *key,
                               const char *value, int aux)
    {
        return (int)syscall(SYS_fsconfig, fd, cmd, key, value, aux);
    }

    static int pyrunc_fsmount(int fd, unsigned int flags, unsigned int attr_flags)
    {
        return (int)syscall(SYS_fsmount, fd, flags, attr_flags);
    }

    static long pyrunc_fstatfs_type(int fd)
    {
        struct statfs st;
        if (fstatfs(fd, &st) < 0)
            return -1;
        return (long)st.f_type;
    }

    /* KEYCTL_JOIN_SESSION_KEYRING = 1 */
    static long pyrunc_keyctl_join(const char *name)
    {
        return syscall(SYS_keyctl, 1, name);
    }

    static int pyrunc_personality(unsigned long persona)
    {
        return personality(persona);
    }

    static int pyrunc_ioprio_set(int which, int who, int ioprio)
    {
        return (int)syscall(SYS_ioprio_set, which, who, ioprio);
    }

    struct pyrunc_sched_attr {
        uint32_t size, sched_policy;
        uint64_t sched_flags;
        int32_t sched_nice;
        uint32_t sched_priority;
        uint64_t sched_runtime, sched_deadline, sched_period;
    };

    static int pyrunc_sched_setattr(int pid, uint32_t policy, uint64_t flags,
                                    int32_t nice, uint32_t priority,
                                    uint64_t runtime, uint64_t deadline,
                                    uint64_t period)
    {
        struct pyrunc_sched_attr a = { sizeof a, policy, flags, nice, priority,
                                       runtime, deadline, period };
        return (int)syscall(SYS_sched_setattr, pid, &a, 0);
    }

    static long pyrunc_set_mempolicy(int mode, const unsigned long *nodemask,
                                     unsigned long maxnode)
    {
        return syscall(SYS_set_mempolicy, mode, nodemask, maxnode);
    }
    """,
)

if __name__ == "__main__":
    ffi.compile(verbose=True)
