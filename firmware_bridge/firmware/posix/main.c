/* POSIX port of the reference node firmware: the "UART" is a pseudo-terminal (or a tty given with
 * --device). Prints "PTY <path>" and "BOOT <boot_id>" on stdout; on SIGTERM/SIGINT prints a STATUS
 * line (readings sampled, acknowledged, dropped) and exits. Used by the tests and the bench.
 *
 * Faults a real node can have, for tests: --clock-rate PERMILLE runs the node clock at that fraction
 * of real time (an RC oscillator's error, a starved host); SIGUSR1 steps it 1 h forward, SIGUSR2 2 h
 * back. --variant 2 is a "reflashed" firmware with another description. --log TEXT sends a LOG once
 * the gateway has sent something. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "fwb_node.h"

static volatile sig_atomic_t stop, jump;
static void on_signal(int sig) { (void)sig; stop = 1; }
static void on_jump(int sig) { jump = sig == SIGUSR1 ? 1 : -1; }

typedef struct {
    int fd;
    uint32_t samples, max_samples;
    uint32_t boot_id;
    int32_t output[4];
    unsigned long write_drops;
    uint32_t rate_permille; /* node clock speed against real time */
    int variant;
    int64_t offset_ms;      /* clock steps applied so far */
} posix_ctx;

static uint32_t millis(void *ctx) {
    posix_ctx *c = ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t real = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    if (jump) { c->offset_ms += jump > 0 ? 3600000 : -7200000; jump = 0; }
    return (uint32_t)(real * c->rate_permille / 1000u + (uint64_t)c->offset_ms);
}

static void write_bytes(void *ctx, const uint8_t *p, size_t n) {
    posix_ctx *c = ctx;
    while (n) {
        ssize_t k = write(c->fd, p, n);
        if (k < 0) {
            struct pollfd out = {c->fd, POLLOUT, 0};
            if (errno == EINTR) continue;
            /* a full line waits, as a UART's transmitter does; a line nobody drains loses the bytes */
            if (errno == EAGAIN && poll(&out, 1, 100) > 0) continue;
            c->write_drops += n;
            return;
        }
        p += k;
        n -= (size_t)k;
    }
}

static int sample(void *ctx, int32_t *raw) {
    posix_ctx *c = ctx;
    if (c->max_samples && c->samples >= c->max_samples) return -1;
    c->samples++;
    raw[0] = (int32_t)c->samples;                  /* sample number: equals the reading's seq */
    raw[1] = 2000 + (int32_t)(c->samples % 100u);  /* a temperature, 0.01 degC */
    raw[2] = c->output[0];
    raw[3] = (int32_t)(c->boot_id & 0x7FFFFFFFu);
    if (c->variant == 2) {                          /* reflashed: 0.001 degC, and a humidity */
        raw[1] *= 10;
        raw[4] = 455;                               /* 45.5 %RH */
    }
    return 0;
}

static int set_output(void *ctx, uint8_t index, int32_t value) {
    posix_ctx *c = ctx;
    if (index >= 4) return -1;
    c->output[index] = value;
    return 0;
}

static const fwb_metric_desc METRICS[] = {
    {"sample", "", 0, FWB_COUNTER},
    {"temperature", "degC", -2, FWB_GAUGE},
    {"output0", "", 0, FWB_STATE},
    {"boot_id", "", 0, FWB_STATE},
};

static const fwb_metric_desc METRICS_V2[] = {
    {"sample", "", 0, FWB_COUNTER},
    {"temperature", "degC", -3, FWB_GAUGE},
    {"output0", "", 0, FWB_STATE},
    {"boot_id", "", 0, FWB_STATE},
    {"humidity", "%RH", -1, FWB_GAUGE},
};

/* The host's RNG; without one, a hash of nanoseconds, pid and an address (never the clock in
 * seconds alone: two boots in one second must differ). */
static uint32_t random_boot_id(void) {
    uint32_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) {
        if (read(fd, &v, sizeof v) != (ssize_t)sizeof v) v = 0;
        close(fd);
    }
    if (!v) {
        struct timespec a, b;
        clock_gettime(CLOCK_REALTIME, &a);
        clock_gettime(CLOCK_MONOTONIC, &b);
        uint64_t x = (uint64_t)a.tv_sec * 1000000000u + (uint64_t)a.tv_nsec;
        x ^= ((uint64_t)getpid() << 32) ^ (uint64_t)b.tv_nsec ^ (uint64_t)(uintptr_t)&a;
        x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL; x ^= x >> 33;
        v = (uint32_t)x ^ (uint32_t)(x >> 32);
    }
    return v ? v : 1u;
}

static int open_line(const char *device, const char *link, int *keep_slave) {
    int fd;
    struct termios t;
    *keep_slave = -1;
    if (device) {
        fd = open(device, O_RDWR | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) { perror(device); return -1; }
        if (tcgetattr(fd, &t) == 0) { cfmakeraw(&t); tcsetattr(fd, TCSANOW, &t); }
        return fd;
    }
    fd = posix_openpt(O_RDWR | O_NOCTTY);
    if (fd < 0 || grantpt(fd) || unlockpt(fd)) { perror("pty"); return -1; }
    const char *slave = ptsname(fd);
    int s = open(slave, O_RDWR | O_NOCTTY);
    if (s < 0) { perror(slave); return -1; }
    if (tcgetattr(s, &t) == 0) { cfmakeraw(&t); tcsetattr(s, TCSANOW, &t); }
    *keep_slave = s; /* held open so the master never sees a hang-up */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    if (link) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.new", link);
        unlink(tmp);
        if (symlink(slave, tmp) || rename(tmp, link)) { perror(link); return -1; }
    }
    printf("PTY %s\n", slave);
    return fd;
}

static void usage(void) {
    fprintf(stderr, "usage: fwb_node_posix [--device TTY | --link PATH] [--node-id N] [--boot-id N] [--addr A]\n"
                    "                      [--interval MS] [--retransmit MS] [--samples N] [--burst N]\n"
                    "                      [--clock-rate PERMILLE] [--variant 1|2] [--log TEXT]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *device = NULL, *link = NULL;
    fwb_node_config cfg = {0x00C0FFEEu, 0, "posix-1.0.0", METRICS, 4, FWB_NO_ADDR, 1000, 2000, 4};
    posix_ctx ctx = {0};
    const char *log_text = NULL;
    ctx.rate_permille = 1000;
    ctx.variant = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) usage();
        unsigned long n = strtoul(v, NULL, 0);
        if (!strcmp(a, "--device")) device = v;
        else if (!strcmp(a, "--link")) link = v;
        else if (!strcmp(a, "--node-id")) cfg.node_id = (uint32_t)n;
        else if (!strcmp(a, "--boot-id")) cfg.boot_id = (uint32_t)n;
        else if (!strcmp(a, "--addr")) cfg.addr = (int)n;
        else if (!strcmp(a, "--interval")) cfg.interval_ms = (uint32_t)n;
        else if (!strcmp(a, "--retransmit")) cfg.retransmit_ms = (uint32_t)n;
        else if (!strcmp(a, "--samples")) ctx.max_samples = (uint32_t)n;
        else if (!strcmp(a, "--burst")) cfg.burst = (uint8_t)n;
        else if (!strcmp(a, "--clock-rate")) ctx.rate_permille = (uint32_t)n;
        else if (!strcmp(a, "--variant")) ctx.variant = (int)n;
        else if (!strcmp(a, "--log")) log_text = v;
        else usage();
        i++;
    }
    if (!cfg.boot_id) cfg.boot_id = random_boot_id();
    if (ctx.variant == 2) {
        cfg.metrics = METRICS_V2;
        cfg.n_metrics = 5;
        cfg.fw_version = "posix-2.0.0";
    }
    ctx.boot_id = cfg.boot_id;
    int slave;
    ctx.fd = open_line(device, link, &slave);
    if (ctx.fd < 0) return 1;
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGUSR1, on_jump);
    signal(SIGUSR2, on_jump);
    printf("BOOT %lu\n", (unsigned long)cfg.boot_id);
    fflush(stdout);
    static fwb_node node;
    fwb_port port = {millis, write_bytes, sample, set_output, &ctx};
    if (fwb_node_init(&node, &cfg, &port)) { fprintf(stderr, "bad node configuration\n"); return 2; }
    struct pollfd pfd = {ctx.fd, POLLIN, 0};
    while (!stop) {
        if (poll(&pfd, 1, 1) > 0 && (pfd.revents & POLLIN)) {
            uint8_t buf[512];
            ssize_t k = read(ctx.fd, buf, sizeof buf);
            if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR)) {
                fprintf(stderr, "line closed by the other end\n");
                break;
            }
            for (ssize_t i = 0; i < k; i++) fwb_node_rx(&node, buf[i]);
            if (log_text && k > 0) { /* once the gateway talks (a pty buffers nothing before that) */
                fwb_node_log(&node, 2, log_text);
                log_text = NULL;
            }
        } else if (pfd.revents & (POLLHUP | POLLERR)) {
            fprintf(stderr, "line hung up\n");
            break;
        }
        fwb_node_poll(&node);
    }
    printf("STATUS boot=%lu sampled=%lu acked=%lu unacked=%u dropped=%lu frames=%lu retransmits=%lu bad_rx=%lu\n",
           (unsigned long)cfg.boot_id, (unsigned long)ctx.samples, (unsigned long)node.acked_seq, node.count,
           (unsigned long)node.dropped, (unsigned long)node.frames_sent, (unsigned long)node.retransmits,
           (unsigned long)node.rx.bad_frames);
    fflush(stdout);
    if (link && !device) unlink(link);
    (void)slave;
    return 0;
}
