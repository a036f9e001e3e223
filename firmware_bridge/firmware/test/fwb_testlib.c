/* Test helpers around the C codec, loaded by the Python tests through ctypes (host only). */
#include <stdio.h>
#include <string.h>

#include "../core/fwb_proto.h"

static int put_hex(char *out, size_t cap, size_t *o, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int k = snprintf(out + *o, cap - *o, "%02x", (unsigned char)s[i]);
        if (k < 0 || (size_t)k >= cap - *o) return -1;
        *o += (size_t)k;
    }
    return 0;
}

#define P(...) do { int k_ = snprintf(out + o, cap - o, __VA_ARGS__); if (k_ < 0 || (size_t)k_ >= cap - o) return FWB_E_SPACE; o += (size_t)k_; } while (0)
#define HEX(str, len) do { if (put_hex(out, cap, &o, (str), (len))) return FWB_E_SPACE; } while (0)

/* The canonical text form of firmware_bridge.codec.canonical(). */
int fwb_t_canonical(const uint8_t *frame, size_t n, char *out, size_t cap) {
    fwb_msg m;
    size_t o = 0;
    int rc = fwb_decode(frame, n, &m);
    if (rc != FWB_OK) return rc;
    if (m.addr == FWB_NO_ADDR) P("a=-"); else P("a=%d", m.addr);
    switch (m.type) {
    case FWB_HELLO:
        P(" HELLO node_id=%lu boot_id=%lu interval_ms=%lu ring_capacity=%u n_metrics=%u fw_version=",
          (unsigned long)m.u.hello.node_id, (unsigned long)m.u.hello.boot_id, (unsigned long)m.u.hello.interval_ms,
          m.u.hello.ring_capacity, m.u.hello.n_metrics);
        HEX(m.u.hello.fw_version.s, m.u.hello.fw_version.len);
        break;
    case FWB_METRIC:
        P(" METRIC index=%u scale=%d kind=%u name=", m.u.metric.index, m.u.metric.scale, m.u.metric.kind);
        HEX(m.u.metric.name.s, m.u.metric.name.len);
        P(" unit=");
        HEX(m.u.metric.unit.s, m.u.metric.unit.len);
        break;
    case FWB_DATA:
        P(" DATA boot_id=%lu seq=%lu node_ms=%lu values=", (unsigned long)m.u.data.boot_id,
          (unsigned long)m.u.data.seq, (unsigned long)m.u.data.node_ms);
        for (unsigned i = 0; i < m.u.data.n; i++) P("%s%u:%ld", i ? "," : "", m.u.data.index[i], (long)m.u.data.raw[i]);
        break;
    case FWB_ACK: P(" ACK boot_id=%lu seq=%lu", (unsigned long)m.u.ack.boot_id, (unsigned long)m.u.ack.seq); break;
    case FWB_TIME_REQ: P(" TIME_REQ token=%lu", (unsigned long)m.u.time_req.token); break;
    case FWB_TIME_RESP:
        P(" TIME_RESP token=%lu boot_id=%lu node_ms=%lu oldest_seq=%lu dropped=%lu", (unsigned long)m.u.time_resp.token,
          (unsigned long)m.u.time_resp.boot_id, (unsigned long)m.u.time_resp.node_ms,
          (unsigned long)m.u.time_resp.oldest_seq, (unsigned long)m.u.time_resp.dropped);
        break;
    case FWB_COMMAND:
        P(" COMMAND id=%u op=%u target=%u value=%ld", m.u.command.id, m.u.command.op, m.u.command.target,
          (long)m.u.command.value);
        break;
    case FWB_RESULT:
        P(" RESULT id=%u status=%u value=%ld", m.u.result.id, m.u.result.status, (long)m.u.result.value);
        break;
    case FWB_LOG:
        P(" LOG level=%u text=", m.u.log.level);
        HEX(m.u.log.text, m.u.log.len);
        break;
    default: return FWB_E_TYPE;
    }
    return (int)o;
}

/* Decode a frame and encode the message again. */
int fwb_t_reencode(const uint8_t *frame, size_t n, uint8_t *out, size_t cap) {
    fwb_msg m;
    int rc = fwb_decode(frame, n, &m);
    return rc == FWB_OK ? fwb_encode(&m, out, cap) : rc;
}

/* Feed bytes through the streaming receiver; returns how many valid messages came out. */
int fwb_t_rx_count(const uint8_t *data, size_t n) {
    static fwb_rx rx;
    fwb_msg m;
    int count = 0;
    fwb_rx_init(&rx);
    for (size_t i = 0; i < n; i++) count += fwb_rx_feed(&rx, data[i], &m);
    return count;
}

static uint32_t rng_state;
static uint32_t rnd(void) { /* xorshift32 */
    uint32_t x = rng_state; x ^= x << 13; x ^= x >> 17; x ^= x << 5; return rng_state = x;
}
static void rnd_str(fwb_str *s) {
    s->len = (uint8_t)(rnd() % (FWB_MAX_STR + 1));
    for (unsigned i = 0; i < s->len; i++) s->s[i] = (char)(0x20 + rnd() % 95);
}

/* A random valid message from a seed, encoded into out. */
int fwb_t_random(uint32_t seed, uint8_t *out, size_t cap) {
    fwb_msg m;
    static const uint8_t types[] = {FWB_HELLO, FWB_METRIC, FWB_DATA, FWB_ACK, FWB_TIME_REQ, FWB_TIME_RESP,
                                    FWB_COMMAND, FWB_RESULT, FWB_LOG};
    memset(&m, 0, sizeof m);
    rng_state = seed ? seed : 1u;
    for (int i = 0; i < 3; i++) rnd();
    m.type = types[rnd() % sizeof types];
    m.addr = (rnd() & 1) ? FWB_NO_ADDR : (int)(rnd() & 0xFF);
    switch (m.type) {
    case FWB_HELLO:
        m.u.hello.node_id = rnd(); m.u.hello.boot_id = rnd(); m.u.hello.interval_ms = rnd();
        m.u.hello.ring_capacity = (uint16_t)rnd(); m.u.hello.n_metrics = (uint8_t)rnd(); rnd_str(&m.u.hello.fw_version);
        break;
    case FWB_METRIC:
        m.u.metric.index = (uint8_t)rnd(); m.u.metric.scale = (int8_t)rnd(); m.u.metric.kind = (uint8_t)(rnd() % 3);
        rnd_str(&m.u.metric.name); rnd_str(&m.u.metric.unit);
        break;
    case FWB_DATA:
        m.u.data.boot_id = rnd(); m.u.data.seq = rnd(); m.u.data.node_ms = rnd();
        m.u.data.n = (uint8_t)(rnd() % (FWB_MAX_VALUES + 1));
        for (unsigned i = 0; i < m.u.data.n; i++) { m.u.data.index[i] = (uint8_t)(i * 8u + rnd() % 8u); /* distinct */ m.u.data.raw[i] = (int32_t)rnd(); }
        break;
    case FWB_ACK: m.u.ack.boot_id = rnd(); m.u.ack.seq = rnd(); break;
    case FWB_TIME_REQ: m.u.time_req.token = rnd(); break;
    case FWB_TIME_RESP:
        m.u.time_resp.token = rnd(); m.u.time_resp.boot_id = rnd(); m.u.time_resp.node_ms = rnd();
        m.u.time_resp.oldest_seq = rnd(); m.u.time_resp.dropped = rnd();
        break;
    case FWB_COMMAND:
        m.u.command.id = (uint16_t)rnd(); m.u.command.op = (uint8_t)rnd(); m.u.command.target = (uint8_t)rnd();
        m.u.command.value = (int32_t)rnd();
        break;
    case FWB_RESULT: m.u.result.id = (uint16_t)rnd(); m.u.result.status = (uint8_t)rnd(); m.u.result.value = (int32_t)rnd(); break;
    default:
        m.u.log.level = (uint8_t)rnd(); m.u.log.len = (uint8_t)(rnd() % (FWB_MAX_LOG - 1));
        for (unsigned i = 0; i < m.u.log.len; i++) m.u.log.text[i] = (char)(0x20 + rnd() % 95);
        break;
    }
    return fwb_encode(&m, out, cap);
}
