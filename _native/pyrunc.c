/*
 * pyrunc's launcher, compiled when the package is built (setup.py) and
 * installed as bin/pyrunc by any install, a plain `pip install .` included.
 *
 * Every verb is a fresh process, so start-up is run time.  This program
 * runs the Python beside it (the venv's) as
 *     python3 -I -S -c BOOT <this launcher's real path> ARGS...
 * -I: no environment variables, user site or cwd on sys.path; -S: no `site`
 * (no .pth scan, no site-packages walk).  BOOT (below) adds the venv's
 * site-packages by hand and falls back to `site` for layouts it does not
 * know.  A symlink to the launcher (installed as `runc`, say) works:
 * /proc/self/exe is the launcher itself, so the venv is found through it.
 *
 * The interpreter, first found: <launcher dir>/python3, <launcher dir>/
 * pythonX.Y, else the one that built the package (PYRUNC_PYTHON: an install
 * outside a venv has no python in its bin/).
 *
 * Built freestanding (no libc: raw syscalls, own _start) where the
 * architecture is known: its exec then costs ~0.1 ms of CPU on top of the
 * interpreter's, against ~0.5 ms for a static glibc program and ~0.7 ms for
 * a dynamic one (glibc's own start-up).  Elsewhere the same logic is built
 * on libc (setup.py tries freestanding first).
 */
#ifndef PYRUNC_PYTHON
#define PYRUNC_PYTHON "/usr/bin/python3"
#endif
#ifndef PYRUNC_PYVER
#define PYRUNC_PYVER "3"
#endif
#define PATH_SIZE 4096
#define AT_FDCWD_ (-100)
#define X_OK_ 1

/* sys.argv on entry: ['-c', launcher, ARGS...] */
static const char BOOT[] =
    "import gc, sys\n"
    "gc.disable()\n" /* a short-lived process: collection passes are pure cost */
    "del sys.argv[0]\n"
    "p = sys.argv[0].rsplit('/', 2)[0] + '/lib/python%d.%d/' % sys.version_info[:2]\n"
    "sys.path += (p + 'site-packages', p + 'dist-packages')\n"
    "try:\n"
    "    from pyrunc.cli import exit_now, main\n"
    "except ImportError:\n"
    "    import site\n"
    "    site.main()\n"
    "    from pyrunc.cli import exit_now, main\n"
    "exit_now(main())\n";

#ifdef PYRUNC_FREESTANDING
#if defined(__x86_64__)
#define NR_readlinkat 267
#define NR_faccessat 269
#define NR_execve 59
#define NR_write 1
#define NR_exit_group 231
static long sys4(long n, long a, long b, long c, long d)
{
    long r;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
    return r;
}
__asm__(".text\n.global _start\n_start:\n xor %rbp,%rbp\n mov %rsp,%rdi\n and $-16,%rsp\n call start_c\n hlt\n");
#elif defined(__aarch64__)
#define NR_readlinkat 78
#define NR_faccessat 48
#define NR_execve 221
#define NR_write 64
#define NR_exit_group 94
static long sys4(long n, long a, long b, long c, long d)
{
    register long x8 __asm__("x8") = n, x0 __asm__("x0") = a, x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c, x3 __asm__("x3") = d;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
    return x0;
}
__asm__(".text\n.global _start\n_start:\n mov x29, #0\n mov x0, sp\n bl start_c\n");
#else
#error "no freestanding build for this architecture (setup.py then builds on libc)"
#endif
static long self_path(char *buf, long size)
{
    return sys4(NR_readlinkat, AT_FDCWD_, (long)"/proc/self/exe", (long)buf, size);
}
static int executable(const char *path)
{
    return sys4(NR_faccessat, AT_FDCWD_, (long)path, X_OK_, 0) == 0;
}
static void exec_(const char *path, char **argv, char **envp)
{
    sys4(NR_execve, (long)path, (long)argv, (long)envp, 0);
}
static void say(const char *s)
{
    long n = 0;
    while (s[n])
        n++;
    sys4(NR_write, 2, (long)s, n, 0);
}
static void __attribute__((noreturn)) quit(int code)
{
    for (;;)
        sys4(NR_exit_group, code, 0, 0, 0);
}
#else /* on libc */
#include <stdlib.h>
#include <unistd.h>
static long self_path(char *buf, long size)
{
    return readlink("/proc/self/exe", buf, (size_t)size);
}
static int executable(const char *path)
{
    return access(path, X_OK) == 0;
}
static void exec_(const char *path, char **argv, char **envp)
{
    execve(path, argv, envp);
}
static void say(const char *s)
{
    long n = 0;
    while (s[n])
        n++;
    if (write(2, s, (size_t)n) < 0)
        return;
}
static void __attribute__((noreturn)) quit(int code)
{
    _exit(code);
}
#endif

/* dir + "/" + name into out; 0 when it does not fit */
static int join(char *out, const char *dir, long dirlen, const char *name)
{
    long i = 0, j = 0;
    if (dirlen + 2 >= PATH_SIZE)
        return 0;
    for (; i < dirlen; i++)
        out[i] = dir[i];
    out[i++] = '/';
    while (name[j] && i < PATH_SIZE - 1)
        out[i++] = name[j++];
    out[i] = '\0';
    return name[j] == '\0';
}

static char self[PATH_SIZE], python[PATH_SIZE];

static int launch(int argc, char **argv, char **envp)
{
    char *args[argc + 7]; /* on the stack: no allocator without libc, and no limit of our own */
    long n = self_path(self, PATH_SIZE - 1), dirlen;
    int i;

    if (n <= 0) {
        say("pyrunc: cannot read /proc/self/exe (is /proc mounted?)\n");
        return 127;
    }
    self[n] = '\0';
    for (dirlen = n; dirlen > 0 && self[dirlen] != '/'; dirlen--)
        ;
    if (!(join(python, self, dirlen, "python3") && executable(python))
        && !(join(python, self, dirlen, "python" PYRUNC_PYVER) && executable(python))) {
        for (i = 0; PYRUNC_PYTHON[i] && i < PATH_SIZE - 1; i++)
            python[i] = PYRUNC_PYTHON[i];
        python[i] = '\0';
    }
    args[0] = python;
    args[1] = "-I";
    args[2] = "-S";
    args[3] = "-c";
    args[4] = (char *)BOOT;
    args[5] = self;
    for (i = 1; i < argc; i++)
        args[5 + i] = argv[i];
    args[5 + (argc > 0 ? argc : 1)] = 0;
    exec_(python, args, envp);
    say("pyrunc: cannot execute the interpreter ");
    say(python);
    say("\n");
    return 127;
}

#ifdef PYRUNC_FREESTANDING
void __attribute__((noreturn, used)) start_c(long *sp)
{
    int argc = (int)sp[0];
    char **argv = (char **)(sp + 1);
    quit(launch(argc, argv, argv + argc + 1));
}
#else
extern char **environ;
int main(int argc, char **argv)
{
    quit(launch(argc, argv, environ));
}
#endif
