/*
 * pyrunc._native_clone: fork() into a cgroup v2 directory, clone3() with
 * CLONE_INTO_CGROUP (Linux 5.7).  A plain CPython extension, not cffi: the
 * interpreter's fork bookkeeping (PyOS_BeforeFork / PyOS_AfterFork_*, what
 * os.fork() does around fork()) needs the GIL held, and cffi releases it
 * around every call.  Only the syscall and that bookkeeping live here; the
 * caller (pyrunc/linux.py) decides when to use it.
 *
 * Why: a process born in its cgroup is never moved there, and moving one
 * (a write to cgroup.procs) takes the kernel's global threadgroup lock for
 * writing, whose first writer after a quiet spell waits for an RCU grace
 * period (8-20 ms of wall time per create on this host).
 *
 * The child is a copy of a single-threaded caller, as after os.fork(); one
 * difference: glibc's cached thread id (only kept for its own bookkeeping
 * since 2.34; raise() and getpid() ask the kernel) still holds the
 * parent's, as after any raw clone.
 */
#define PY_SSIZE_T_CLEAN
#define Py_LIMITED_API 0x030B0000
#include <Python.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#define PYRUNC_CLONE_INTO_CGROUP 0x200000000ULL

/* struct clone_args up to its `cgroup` field (CLONE_ARGS_SIZE_VER2) */
struct pyrunc_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal;
    uint64_t stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

static PyObject *fork_into_cgroup(PyObject *self, PyObject *arg)
{
    struct pyrunc_clone_args args;
    long fd = PyLong_AsLong(arg);
    long pid;
    int saved_errno;

    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if (fd < 0) {
        PyErr_SetString(PyExc_ValueError, "fork_into_cgroup: a cgroup directory fd is needed");
        return NULL;
    }
    memset(&args, 0, sizeof(args));
    args.flags = PYRUNC_CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = (uint64_t)fd;

    PyOS_BeforeFork();
    pid = syscall(SYS_clone3, &args, sizeof(args));
    saved_errno = errno;
    if (pid == 0)
        PyOS_AfterFork_Child();
    else
        PyOS_AfterFork_Parent();
    if (pid < 0) {
        errno = saved_errno;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(pid);
}

static PyMethodDef methods[] = {
    {"fork_into_cgroup", fork_into_cgroup, METH_O,
     "fork_into_cgroup(fd) -> pid (0 in the child), the child born in the cgroup v2 directory fd"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pyrunc._native_clone", NULL, -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native_clone(void)
{
    return PyModule_Create(&module);
}
