/* A wall clock moved by a file, preloaded into one Envoy by test_limit_policies.py.
 *
 * Envoy reads the time the filter gets (proxy_get_current_time_nanoseconds) from the system
 * clock, glibc's clock_gettime(CLOCK_REALTIME). This library, in LD_PRELOAD, answers
 * CLOCK_REALTIME (and gettimeofday, time) with the real time plus an offset in nanoseconds read
 * from the file named by TOLLGATE_CLOCK_OFFSET_FILE at every call, so a test moves the clock by
 * rewriting the file. Every other clock (the monotonic one Envoy's timers use) is the real one.
 *
 * Why not libfaketime: Debian's libfaketime 0.9.10 deadlocks Envoy 1.40 at start. Envoy's
 * statically linked tcmalloc calls poll() while it initialises; libfaketime intercepts poll and,
 * initialising itself, calls dlsym, whose failed lookup allocates through the tcmalloc that is
 * still initialising. This library intercepts no function that an allocator calls and never
 * calls dlsym: it reads the real clocks with the raw system call. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long long offset_ns(void) {
    const char *path = getenv("TOLLGATE_CLOCK_OFFSET_FILE");
    if (path == NULL) return 0;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[32];
    long n = (long)syscall(SYS_read, fd, buf, sizeof buf - 1);
    syscall(SYS_close, fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    long long v = 0;
    int neg = 0, i = 0;
    if (buf[0] == '-') { neg = 1; i = 1; }
    for (; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) v = v * 10 + (buf[i] - '0');
    return neg ? -v : v;
}

static int real_clock(clockid_t clk, struct timespec *ts) {
    return (int)syscall(SYS_clock_gettime, clk, ts);
}

int clock_gettime(clockid_t clk, struct timespec *ts) {
    int r = real_clock(clk, ts);
    if (r != 0 || (clk != CLOCK_REALTIME && clk != CLOCK_REALTIME_COARSE)) return r;
    long long t = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec + offset_ns();
    ts->tv_sec = t / 1000000000LL;
    ts->tv_nsec = t % 1000000000LL;
    return 0;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
    (void)tz;
    struct timespec ts;
    int r = clock_gettime(CLOCK_REALTIME, &ts);
    if (r == 0) {
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return r;
}

time_t time(time_t *out) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (out != NULL) *out = ts.tv_sec;
    return ts.tv_sec;
}
