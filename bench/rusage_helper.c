/*
 * bench/rusage_helper: run argv[2..] as the child of this small process and
 * write its wait4() figures to the file argv[1]:
 *     "<wait status> <wall ns> <user us> <sys us> <maxrss KiB>\n"
 *
 * Why a helper: execve() folds the high-water RSS of the process's old
 * memory into its ru_maxrss, so a runtime started straight from the Python
 * bench would report the bench's own RSS (~15 MiB) as its peak.  Forked
 * from this program instead, its starting point is a few hundred KiB.
 * The wall time is taken here too, from fork to the end of wait4, so the
 * helper's own start-up is not counted.  Exit status: 0, or 125/126 when
 * the helper itself failed (the child's status is in the file).
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/wait.h>

static long long ns_between(const struct timespec *a, const struct timespec *b)
{
    return (b->tv_sec - a->tv_sec) * 1000000000LL + (b->tv_nsec - a->tv_nsec);
}

static long long usec(const struct timeval *tv)
{
    return tv->tv_sec * 1000000LL + tv->tv_usec;
}

int main(int argc, char **argv)
{
    struct timespec t0, t1;
    struct rusage ru;
    int status;
    pid_t pid;
    FILE *out;

    if (argc < 3) {
        fprintf(stderr, "usage: %s RESULT-FILE PROGRAM [ARG...]\n", argv[0]);
        return 125;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid = fork();
    if (pid < 0) {
        perror("rusage_helper: fork");
        return 126;
    }
    if (pid == 0) {
        execv(argv[2], argv + 2);
        perror("rusage_helper: execv");
        _exit(127);
    }
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("rusage_helper: wait4");
        return 126;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    out = fopen(argv[1], "w");
    if (out == NULL) {
        perror("rusage_helper: result file");
        return 126;
    }
    fprintf(out, "%d %lld %lld %lld %ld\n", status, ns_between(&t0, &t1),
            usec(&ru.ru_utime), usec(&ru.ru_stime), ru.ru_maxrss);
    return fclose(out) == 0 ? 0 : 126;
}
