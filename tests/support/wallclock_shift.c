/* LD_PRELOAD shim for tests: the wall clock (CLOCK_REALTIME and what reads it) shifted by the number of
 * seconds in the file $WALLCLOCK_SHIFT_FILE, re-read at most every 20 ms; the monotonic clocks untouched.
 * It stands in for an operator's `date -s` or an NTP step, in the processes that inherit it only (the
 * machine's clock is never changed). libfaketime would do, but its clock_nanosleep breaks Python's
 * time.sleep when the monotonic clock is left alone (EINVAL), and it is not installed everywhere.
 * Built by tests/support/wallclock.py with the system's C compiler. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static clock_gettime_fn real_clock_gettime(void) {
    static clock_gettime_fn real;
    if (!real) real = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    return real;
}

static double shift_seconds(void) {
    static double shift;
    static double read_at = -1.0;
    struct timespec mono;
    real_clock_gettime()(CLOCK_MONOTONIC, &mono);
    double now = mono.tv_sec + mono.tv_nsec / 1e9;
    if (read_at >= 0.0 && now - read_at < 0.02) return shift;
    read_at = now;
    const char *path = getenv("WALLCLOCK_SHIFT_FILE");
    if (!path) return shift;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return shift;
    char text[64];
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n > 0) {
        text[n] = '\0';
        shift = strtod(text, NULL);
    }
    return shift;
}

static void shifted(struct timespec *tp) {
    double shift = shift_seconds();
    long long whole = (long long)shift;
    long long nanos = tp->tv_nsec + (long long)((shift - (double)whole) * 1e9);
    tp->tv_sec += whole + nanos / 1000000000LL;
    nanos %= 1000000000LL;
    if (nanos < 0) {
        nanos += 1000000000LL;
        tp->tv_sec -= 1;
    }
    tp->tv_nsec = nanos;
}

int clock_gettime(clockid_t clock, struct timespec *tp) {
    int done = real_clock_gettime()(clock, tp);
    if (done == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE)) shifted(tp);
    return done;
}

int gettimeofday(struct timeval *tv, void *tz) {
    struct timespec now;
    (void)tz;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0) return -1;
    if (tv) {
        tv->tv_sec = now.tv_sec;
        tv->tv_usec = now.tv_nsec / 1000;
    }
    return 0;
}

time_t time(time_t *out) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (out) *out = now.tv_sec;
    return now.tv_sec;
}
