/* Fuzz the C decoder with random and mutated frames (built with sanitizers by the tests).
 * Usage: fwb_fuzz ITERATIONS SEED; exits 0 when nothing crashed, prints counts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/fwb_proto.h"

int fwb_t_random(uint32_t seed, uint8_t *out, size_t cap);

static uint32_t s = 1;
static uint32_t rnd(void) { s ^= s << 13; s ^= s >> 17; s ^= s << 5; return s; }

int main(int argc, char **argv) {
    long iters = argc > 1 ? atol(argv[1]) : 100000;
    s = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 0) : 1u;
    if (!s) s = 1;
    uint8_t buf[FWB_MAX_WIRE + 64];
    fwb_msg m;
    fwb_rx rx;
    long ok = 0, rejected = 0;
    fwb_rx_init(&rx);
    for (long i = 0; i < iters; i++) {
        size_t n;
        if (i & 1) { /* pure noise, any length up to past the maximum */
            n = rnd() % sizeof buf;
            for (size_t k = 0; k < n; k++) buf[k] = (uint8_t)rnd();
        } else { /* a valid frame with a few bytes flipped, cut or extended */
            int len = fwb_t_random(rnd(), buf, sizeof buf);
            n = len > 0 ? (size_t)len - 1 : 0;
            unsigned flips = rnd() % 4;
            for (unsigned k = 0; k < flips && n; k++) buf[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8));
            if (rnd() % 4 == 0 && n) n = rnd() % n;
        }
        if (fwb_decode(buf, n, &m) == FWB_OK) ok++; else rejected++;
        for (size_t k = 0; k < n; k++) fwb_rx_feed(&rx, buf[k], &m);
    }
    printf("decoded %ld rejected %ld rx_bad %lu\n", ok, rejected, (unsigned long)rx.bad_frames);
    return 0;
}
