/* Firmware bridge protocol v1 codec. See fwb_proto.h. */
#include "fwb_proto.h"

#include <string.h>

uint16_t fwb_crc16(const uint8_t *p, size_t n, uint16_t crc) {
    while (n--) {
        crc ^= (uint16_t)(*p++ << 8);
        for (int i = 0; i < 8; i++) crc = (crc & 0x8000u) ? (uint16_t)((crc << 1) ^ 0x1021u) : (uint16_t)(crc << 1);
    }
    return crc;
}

size_t fwb_cobs_encode(const uint8_t *in, size_t n, uint8_t *out) {
    size_t code_at = 0, o = 1;
    uint8_t code = 1;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == 0) {
            out[code_at] = code; code_at = o++; code = 1;
        } else {
            out[o++] = in[i];
            /* a full block of 254 bytes; a new block only if more input follows (canonical COBS) */
            if (++code == 0xFF && i + 1 < n) { out[code_at] = code; code_at = o++; code = 1; }
        }
    }
    out[code_at] = code;
    return o;
}

int fwb_cobs_decode(const uint8_t *in, size_t n, uint8_t *out) {
    size_t i = 0, o = 0;
    while (i < n) {
        uint8_t code = in[i];
        if (code == 0 || i + code > n) return FWB_E_COBS;
        for (size_t k = i + 1; k < i + code; k++) {
            if (in[k] == 0) return FWB_E_COBS;
            out[o++] = in[k];
        }
        i += code;
        if (code < 0xFF && i < n) out[o++] = 0;
    }
    return (int)o;
}

/* -- little-endian writer / reader ----------------------------------------------------------- */
typedef struct { uint8_t *p; size_t n, cap; int err; } wbuf;
typedef struct { const uint8_t *p; size_t n, pos; int err; } rbuf;

static void put8(wbuf *w, uint32_t v) { if (w->n >= w->cap) { w->err = FWB_E_SPACE; return; } w->p[w->n++] = (uint8_t)v; }
static void put16(wbuf *w, uint32_t v) { put8(w, v); put8(w, v >> 8); }
static void put32(wbuf *w, uint32_t v) { put16(w, v); put16(w, v >> 16); }
/* str8 fields carry no control characters (spec: strings) */
static int str_ok(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) if ((uint8_t)s[i] < 0x20u || (uint8_t)s[i] == 0x7Fu) return 0;
    return 1;
}
static int dup_index(const uint8_t *index, uint8_t n) {
    uint8_t seen[32] = {0};
    for (uint8_t i = 0; i < n; i++) {
        if (seen[index[i] >> 3] & (1u << (index[i] & 7u))) return 1;
        seen[index[i] >> 3] |= (uint8_t)(1u << (index[i] & 7u));
    }
    return 0;
}
static void putstr(wbuf *w, const fwb_str *s) {
    if (s->len > FWB_MAX_STR || !str_ok(s->s, s->len)) { w->err = FWB_E_RANGE; return; }
    put8(w, s->len);
    for (uint8_t i = 0; i < s->len; i++) put8(w, (uint8_t)s->s[i]);
}
static uint32_t get8(rbuf *r) { if (r->pos >= r->n) { r->err = FWB_E_SHORT; return 0; } return r->p[r->pos++]; }
static uint32_t get16(rbuf *r) { uint32_t lo = get8(r); return lo | get8(r) << 8; }
static uint32_t get32(rbuf *r) { uint32_t lo = get16(r); return lo | get16(r) << 16; }
static void getstr(rbuf *r, fwb_str *s) {
    uint32_t n = get8(r);
    if (r->err) return;
    if (n > FWB_MAX_STR) { r->err = FWB_E_RANGE; return; }
    if (r->pos + n > r->n) { r->err = FWB_E_SHORT; return; }
    if (!str_ok((const char *)r->p + r->pos, n)) { r->err = FWB_E_RANGE; return; }
    s->len = (uint8_t)n;
    memcpy(s->s, r->p + r->pos, n);
    r->pos += n;
}

int fwb_encode_body(const fwb_msg *m, uint8_t *body, size_t cap) {
    wbuf w = {body, 0, cap < FWB_MAX_BODY ? cap : FWB_MAX_BODY, 0};
    if (m->addr != FWB_NO_ADDR) {
        if (m->addr < 0 || m->addr > 255) return FWB_E_RANGE;
        put8(&w, FWB_VERSION << 4 | FWB_FLAG_ADDR); put8(&w, (uint32_t)m->addr);
    } else {
        put8(&w, FWB_VERSION << 4);
    }
    put8(&w, m->type);
    switch (m->type) {
    case FWB_HELLO:
        put32(&w, m->u.hello.node_id); put32(&w, m->u.hello.boot_id); put32(&w, m->u.hello.interval_ms);
        put16(&w, m->u.hello.ring_capacity); put8(&w, m->u.hello.n_metrics); putstr(&w, &m->u.hello.fw_version);
        break;
    case FWB_METRIC:
        if (m->u.metric.kind > FWB_STATE) return FWB_E_RANGE;
        put8(&w, m->u.metric.index); put8(&w, (uint8_t)m->u.metric.scale); put8(&w, m->u.metric.kind);
        putstr(&w, &m->u.metric.name); putstr(&w, &m->u.metric.unit);
        break;
    case FWB_DATA:
        if (m->u.data.n > FWB_MAX_VALUES || dup_index(m->u.data.index, m->u.data.n)) return FWB_E_RANGE;
        put32(&w, m->u.data.boot_id); put32(&w, m->u.data.seq); put32(&w, m->u.data.node_ms); put8(&w, m->u.data.n);
        for (uint8_t i = 0; i < m->u.data.n; i++) { put8(&w, m->u.data.index[i]); put32(&w, (uint32_t)m->u.data.raw[i]); }
        break;
    case FWB_ACK: put32(&w, m->u.ack.boot_id); put32(&w, m->u.ack.seq); break;
    case FWB_TIME_REQ: put32(&w, m->u.time_req.token); break;
    case FWB_TIME_RESP:
        put32(&w, m->u.time_resp.token); put32(&w, m->u.time_resp.boot_id); put32(&w, m->u.time_resp.node_ms);
        put32(&w, m->u.time_resp.oldest_seq); put32(&w, m->u.time_resp.dropped);
        break;
    case FWB_COMMAND:
        put16(&w, m->u.command.id); put8(&w, m->u.command.op); put8(&w, m->u.command.target);
        put32(&w, (uint32_t)m->u.command.value);
        break;
    case FWB_RESULT:
        put16(&w, m->u.result.id); put8(&w, m->u.result.status); put32(&w, (uint32_t)m->u.result.value);
        break;
    case FWB_LOG:
        if (m->u.log.len > FWB_MAX_LOG) return FWB_E_RANGE;
        put8(&w, m->u.log.level);
        for (uint8_t i = 0; i < m->u.log.len; i++) put8(&w, (uint8_t)m->u.log.text[i]);
        break;
    default: return FWB_E_TYPE;
    }
    return w.err ? w.err : (int)w.n;
}

int fwb_decode_body(const uint8_t *body, size_t n, fwb_msg *m) {
    rbuf r = {body, n, 0, 0};
    if (n < 2) return FWB_E_SHORT;
    uint32_t vf = get8(&r);
    if ((vf >> 4) != FWB_VERSION || (vf & 0x0Eu)) return FWB_E_VERSION;
    m->addr = (vf & FWB_FLAG_ADDR) ? (int)get8(&r) : FWB_NO_ADDR;
    m->type = (uint8_t)get8(&r);
    if (r.err) return r.err;
    switch (m->type) {
    case FWB_HELLO:
        m->u.hello.node_id = get32(&r); m->u.hello.boot_id = get32(&r); m->u.hello.interval_ms = get32(&r);
        m->u.hello.ring_capacity = (uint16_t)get16(&r); m->u.hello.n_metrics = (uint8_t)get8(&r);
        getstr(&r, &m->u.hello.fw_version);
        break;
    case FWB_METRIC:
        m->u.metric.index = (uint8_t)get8(&r); m->u.metric.scale = (int8_t)get8(&r); m->u.metric.kind = (uint8_t)get8(&r);
        if (!r.err && m->u.metric.kind > FWB_STATE) return FWB_E_RANGE;
        getstr(&r, &m->u.metric.name); getstr(&r, &m->u.metric.unit);
        break;
    case FWB_DATA:
        m->u.data.boot_id = get32(&r); m->u.data.seq = get32(&r); m->u.data.node_ms = get32(&r);
        m->u.data.n = (uint8_t)get8(&r);
        if (r.err) return r.err;
        if (m->u.data.n > FWB_MAX_VALUES) return FWB_E_RANGE;
        for (uint8_t i = 0; i < m->u.data.n; i++) { m->u.data.index[i] = (uint8_t)get8(&r); m->u.data.raw[i] = (int32_t)get32(&r); }
        if (!r.err && dup_index(m->u.data.index, m->u.data.n)) return FWB_E_RANGE;
        break;
    case FWB_ACK: m->u.ack.boot_id = get32(&r); m->u.ack.seq = get32(&r); break;
    case FWB_TIME_REQ: m->u.time_req.token = get32(&r); break;
    case FWB_TIME_RESP:
        m->u.time_resp.token = get32(&r); m->u.time_resp.boot_id = get32(&r); m->u.time_resp.node_ms = get32(&r);
        m->u.time_resp.oldest_seq = get32(&r); m->u.time_resp.dropped = get32(&r);
        break;
    case FWB_COMMAND:
        m->u.command.id = (uint16_t)get16(&r); m->u.command.op = (uint8_t)get8(&r); m->u.command.target = (uint8_t)get8(&r);
        m->u.command.value = (int32_t)get32(&r);
        break;
    case FWB_RESULT:
        m->u.result.id = (uint16_t)get16(&r); m->u.result.status = (uint8_t)get8(&r); m->u.result.value = (int32_t)get32(&r);
        break;
    case FWB_LOG:
        m->u.log.level = (uint8_t)get8(&r);
        if (r.err) return r.err;
        if (n - r.pos > FWB_MAX_LOG) return FWB_E_RANGE;
        m->u.log.len = (uint8_t)(n - r.pos);
        memcpy(m->u.log.text, body + r.pos, n - r.pos);
        r.pos = n;
        break;
    default: return FWB_E_TYPE;
    }
    if (r.err) return r.err;
    return r.pos == n ? FWB_OK : FWB_E_TRAILING;
}

int fwb_encode(const fwb_msg *m, uint8_t *out, size_t cap) {
    uint8_t body[FWB_MAX_BODY + 2];
    int n = fwb_encode_body(m, body, FWB_MAX_BODY);
    if (n < 0) return n;
    uint16_t crc = fwb_crc16(body, (size_t)n, 0xFFFFu);
    body[n] = (uint8_t)crc;
    body[n + 1] = (uint8_t)(crc >> 8);
    if (cap < (size_t)n + 4) return FWB_E_SPACE;
    size_t len = fwb_cobs_encode(body, (size_t)n + 2, out);
    out[len++] = 0;
    return (int)len;
}

int fwb_decode(const uint8_t *frame, size_t n, fwb_msg *m) {
    uint8_t raw[FWB_MAX_COBS];
    if (n == 0 || n > FWB_MAX_COBS) return FWB_E_SHORT;
    int len = fwb_cobs_decode(frame, n, raw);
    if (len < 0) return len;
    if (len < 3) return FWB_E_SHORT;
    uint16_t got = (uint16_t)(raw[len - 2] | raw[len - 1] << 8);
    if (got != fwb_crc16(raw, (size_t)len - 2, 0xFFFFu)) return FWB_E_CRC;
    return fwb_decode_body(raw, (size_t)len - 2, m);
}

void fwb_str_set(fwb_str *dst, const char *s) {
    size_t n = strlen(s);
    dst->len = (uint8_t)(n > FWB_MAX_STR ? FWB_MAX_STR : n);
    memcpy(dst->s, s, dst->len);
}

void fwb_rx_init(fwb_rx *rx) { memset(rx, 0, sizeof *rx); }

int fwb_rx_feed(fwb_rx *rx, uint8_t byte, fwb_msg *m) {
    if (byte != 0) {
        if (rx->len < sizeof rx->buf) rx->buf[rx->len++] = byte;
        else rx->overflow = 1;
        return 0;
    }
    int ok = 0;
    if (rx->len) {
        if (!rx->overflow && fwb_decode(rx->buf, rx->len, m) == FWB_OK) ok = 1;
        else rx->bad_frames++;
    }
    rx->len = 0;
    rx->overflow = 0;
    return ok;
}

static const char *const STANDARD_UNITS[] = {FWB_STANDARD_UNITS};

int fwb_unit_standard(const char *unit) {
    for (size_t i = 0; i < sizeof STANDARD_UNITS / sizeof STANDARD_UNITS[0]; i++)
        if (!strcmp(unit, STANDARD_UNITS[i])) return 1;
    return 0;
}
