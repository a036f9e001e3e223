/* POSIX port of the reference node firmware: the "UART" is a pseudo-terminal (or a tty given with
 * --device). Prints "PTY <path>" and "BOOT <boot_id>" on stdout; on SIGTERM/SIGINT prints a STATUS
 * line (readings sampled, acknowledged, dropped) and exits. Used by the tests and the bench. */
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

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

typedef struct {
    int fd;
    uint32_t samples, max_samples;
    uint32_t boot_id;
    int32_t output[4];
    unsigned long write_drops;
} posix_ctx;

static uint32_t millis(void *ctx) {
    struct timespec ts;
    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
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

static uint32_t random_boot_id(void) {
    uint32_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) {
        if (read(fd, &v, sizeof v) != (ssize_t)sizeof v) v = 0;
        close(fd);
    }
    if (!v) v = (uint32_t)time(NULL) ^ (uint32_t)getpid();
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
                    "                      [--interval MS] [--retransmit MS] [--samples N] [--burst N]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *device = NULL, *link = NULL;
    fwb_node_config cfg = {0x00C0FFEEu, 0, "posix-1.0.0", METRICS, 4, FWB_NO_ADDR, 1000, 2000, 4};
    posix_ctx ctx = {0};
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
        else usage();
        i++;
    }
    if (!cfg.boot_id) cfg.boot_id = random_boot_id();
    ctx.boot_id = cfg.boot_id;
    int slave;
    ctx.fd = open_line(device, link, &slave);
    if (ctx.fd < 0) return 1;
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
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
