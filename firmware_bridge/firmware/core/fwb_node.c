/* Node side of the firmware bridge. See fwb_node.h. */
#include "fwb_node.h"

#include <string.h>

static void send_msg(fwb_node *n) {
    n->msg.addr = n->cfg.addr;
    int len = fwb_encode(&n->msg, n->tx, sizeof n->tx);
    if (len > 0) {
        n->port.write(n->port.ctx, n->tx, (size_t)len);
        n->frames_sent++;
    }
}

static void describe(fwb_node *n) {
    memset(&n->msg, 0, sizeof n->msg);
    n->msg.type = FWB_HELLO;
    n->msg.u.hello.node_id = n->cfg.node_id;
    n->msg.u.hello.boot_id = n->cfg.boot_id;
    n->msg.u.hello.interval_ms = n->cfg.interval_ms;
    n->msg.u.hello.ring_capacity = FWB_RING_CAPACITY;
    n->msg.u.hello.n_metrics = n->cfg.n_metrics;
    fwb_str_set(&n->msg.u.hello.fw_version, n->cfg.fw_version);
    send_msg(n);
    for (uint8_t i = 0; i < n->cfg.n_metrics; i++) {
        const fwb_metric_desc *d = &n->cfg.metrics[i];
        memset(&n->msg, 0, sizeof n->msg);
        n->msg.type = FWB_METRIC;
        n->msg.u.metric.index = i;
        n->msg.u.metric.scale = d->scale;
        n->msg.u.metric.kind = d->kind;
        fwb_str_set(&n->msg.u.metric.name, d->name);
        fwb_str_set(&n->msg.u.metric.unit, d->unit);
        send_msg(n);
    }
}

int fwb_node_init(fwb_node *n, const fwb_node_config *cfg, const fwb_port *port) {
    static const uint8_t flush = 0;
    if (cfg->n_metrics > FWB_NODE_MAX_METRICS || !cfg->boot_id || !port->millis || !port->write || !port->sample)
        return -1;
    for (uint8_t i = 0; i < cfg->n_metrics; i++) { /* standard units, distinct names (spec: metrics) */
        if (!fwb_unit_standard(cfg->metrics[i].unit) || cfg->metrics[i].kind > FWB_STATE) return -1;
        for (uint8_t j = 0; j < i; j++)
            if (!strcmp(cfg->metrics[i].name, cfg->metrics[j].name)) return -1;
    }
    memset(n, 0, sizeof *n);
    n->cfg = *cfg;
    if (!n->cfg.burst) n->cfg.burst = 4;
    n->port = *port;
    n->next_seq = 1;
    fwb_rx_init(&n->rx);
    n->last_sample_ms = port->millis(port->ctx);
    if (cfg->addr == FWB_NO_ADDR) { /* on a shared line the node waits to be asked (DESCRIBE) */
        port->write(port->ctx, &flush, 1); /* ends whatever half frame the gateway may hold */
        describe(n);
    }
    return 0;
}

void fwb_node_log(fwb_node *n, uint8_t level, const char *text) {
    size_t len = strlen(text);
    memset(&n->msg, 0, sizeof n->msg);
    n->msg.type = FWB_LOG;
    n->msg.u.log.level = level;
    if (len > FWB_MAX_LOG) { /* cut at FWB_MAX_LOG bytes, never inside a UTF-8 sequence */
        len = FWB_MAX_LOG;
        while (len && ((uint8_t)text[len] & 0xC0u) == 0x80u) len--;
    }
    n->msg.u.log.len = (uint8_t)len;
    memcpy(n->msg.u.log.text, text, n->msg.u.log.len);
    send_msg(n);
}

static void on_ack(fwb_node *n, uint32_t boot_id, uint32_t seq) {
    if (boot_id != n->cfg.boot_id) return;
    while (n->count && n->ring[n->head].seq <= seq) {
        n->head = (uint16_t)((n->head + 1u) % FWB_RING_CAPACITY);
        n->count--;
    }
    if (seq > n->acked_seq) n->acked_seq = seq;
}

static void result(fwb_node *n, uint16_t id, uint8_t status, int32_t value) {
    memset(&n->msg, 0, sizeof n->msg);
    n->msg.type = FWB_RESULT;
    n->msg.u.result.id = id;
    n->msg.u.result.status = status;
    n->msg.u.result.value = value;
    send_msg(n);
}

static void on_command(fwb_node *n, uint16_t id, uint8_t op, uint8_t target, int32_t value) {
    switch (op) {
    case FWB_OP_SET_INTERVAL:
        if (value < 10 || value > 86400000) { result(n, id, FWB_ST_BAD_VALUE, (int32_t)n->cfg.interval_ms); return; }
        n->cfg.interval_ms = (uint32_t)value;
        result(n, id, FWB_ST_OK, value);
        return;
    case FWB_OP_SET_OUTPUT:
        if (!n->port.set_output) { result(n, id, FWB_ST_UNKNOWN_OP, 0); return; }
        if ((value != 0 && value != 1) || n->port.set_output(n->port.ctx, target, value)) {
            result(n, id, FWB_ST_BAD_VALUE, value);
            return;
        }
        result(n, id, FWB_ST_OK, value);
        return;
    case FWB_OP_DESCRIBE:
        result(n, id, FWB_ST_OK, 0);
        describe(n);
        return;
    default:
        result(n, id, FWB_ST_UNKNOWN_OP, 0);
    }
}

void fwb_node_rx(fwb_node *n, uint8_t byte) {
    fwb_msg *m = &n->msg;
    if (!fwb_rx_feed(&n->rx, byte, m)) return;
    if (n->cfg.addr != FWB_NO_ADDR) {
        if (m->addr != n->cfg.addr && m->addr != 255) return;
        if (m->addr == n->cfg.addr) n->polled = n->cfg.burst; /* our turn to talk */
    }
    switch (m->type) {
    case FWB_ACK:
        on_ack(n, m->u.ack.boot_id, m->u.ack.seq);
        break;
    case FWB_TIME_REQ: {
        uint32_t token = m->u.time_req.token;
        memset(m, 0, sizeof *m);
        m->type = FWB_TIME_RESP;
        m->u.time_resp.token = token;
        m->u.time_resp.boot_id = n->cfg.boot_id;
        m->u.time_resp.node_ms = n->port.millis(n->port.ctx);
        m->u.time_resp.oldest_seq = n->count ? n->ring[n->head].seq : n->next_seq;
        m->u.time_resp.dropped = n->dropped;
        send_msg(n);
        break;
    }
    case FWB_COMMAND:
        on_command(n, m->u.command.id, m->u.command.op, m->u.command.target, m->u.command.value);
        break;
    default:
        break; /* node-to-gateway types are ignored */
    }
}

static void take_sample(fwb_node *n, uint32_t now) {
    int32_t raw[FWB_NODE_MAX_METRICS];
    if (n->port.sample(n->port.ctx, raw) != 0) return;
    if (n->count == FWB_RING_CAPACITY) { /* full: the oldest unacknowledged reading is lost, and counted */
        n->head = (uint16_t)((n->head + 1u) % FWB_RING_CAPACITY);
        n->count--;
        n->dropped++;
    }
    fwb_slot *s = &n->ring[(n->head + n->count) % FWB_RING_CAPACITY];
    n->count++;
    s->seq = n->next_seq++;
    s->node_ms = now;
    s->sent = 0;
    memcpy(s->raw, raw, sizeof(int32_t) * n->cfg.n_metrics);
}

static void send_slot(fwb_node *n, fwb_slot *s, uint32_t now) {
    memset(&n->msg, 0, sizeof n->msg);
    n->msg.type = FWB_DATA;
    n->msg.u.data.boot_id = n->cfg.boot_id;
    n->msg.u.data.seq = s->seq;
    n->msg.u.data.node_ms = s->node_ms;
    n->msg.u.data.n = n->cfg.n_metrics;
    for (uint8_t i = 0; i < n->cfg.n_metrics; i++) { n->msg.u.data.index[i] = i; n->msg.u.data.raw[i] = s->raw[i]; }
    if (s->sent) n->retransmits++;
    s->sent = 1;
    s->sent_ms = now;
    send_msg(n);
}

void fwb_node_poll(fwb_node *n) {
    uint32_t now = n->port.millis(n->port.ctx);
    if (now - n->last_sample_ms >= n->cfg.interval_ms) {
        /* stay on the interval grid; after a long stall restart it from now */
        n->last_sample_ms = (now - n->last_sample_ms >= 2u * n->cfg.interval_ms) ? now : n->last_sample_ms + n->cfg.interval_ms;
        take_sample(n, now);
    }
    uint8_t addressed = n->cfg.addr != FWB_NO_ADDR;
    uint8_t budget = addressed ? n->polled : n->cfg.burst;
    for (uint16_t k = 0; k < n->count && budget; k++) {
        fwb_slot *s = &n->ring[(n->head + k) % FWB_RING_CAPACITY];
        if (!s->sent || now - s->sent_ms >= n->cfg.retransmit_ms) {
            send_slot(n, s, now);
            budget--;
        }
    }
    if (addressed) n->polled = 0;
}
