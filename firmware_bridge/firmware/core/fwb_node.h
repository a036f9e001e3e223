/* Node side of the firmware bridge: a ring of unacknowledged readings, retransmission, time sync,
 * commands. Portable C99, no heap: every buffer lives in the fwb_node the caller provides.
 *
 * A port provides a millisecond tick, a byte writer and a sensor read (fwb_port), calls
 * fwb_node_rx() for every received byte and fwb_node_poll() often (every few ms). */
#ifndef FWB_NODE_H
#define FWB_NODE_H

#include "fwb_proto.h"

#ifndef FWB_RING_CAPACITY
#define FWB_RING_CAPACITY 32u   /* unacknowledged readings kept */
#endif
#ifndef FWB_NODE_MAX_METRICS
#define FWB_NODE_MAX_METRICS 8u /* values per reading */
#endif

typedef struct {
    const char *name, *unit;
    int8_t scale; /* physical = raw * 10^scale */
    uint8_t kind; /* enum fwb_kind */
} fwb_metric_desc;

typedef struct {
    uint32_t (*millis)(void *ctx);                              /* monotonic ms, wraps at 2^32 */
    void (*write)(void *ctx, const uint8_t *p, size_t n);       /* send bytes on the line */
    int (*sample)(void *ctx, int32_t *raw);                     /* read every metric; 0 = ok */
    int (*set_output)(void *ctx, uint8_t index, int32_t value); /* optional (NULL); 0 = ok */
    void *ctx;
} fwb_port;

typedef struct {
    uint32_t node_id, boot_id;  /* boot_id: random, never 0, new at every boot */
    const char *fw_version;
    const fwb_metric_desc *metrics;
    uint8_t n_metrics;
    int addr;                   /* FWB_NO_ADDR, or 1..254 on a multi-drop line: then the node only
                                   talks in reply to a frame addressed to it */
    uint32_t interval_ms;       /* sampling interval */
    uint32_t retransmit_ms;     /* resend an unacknowledged reading after this long */
    uint8_t burst;              /* at most this many DATA frames per fwb_node_poll() */
} fwb_node_config;

typedef struct {
    uint32_t seq, node_ms, sent_ms;
    uint8_t sent;
    int32_t raw[FWB_NODE_MAX_METRICS];
} fwb_slot;

typedef struct {
    fwb_node_config cfg;
    fwb_port port;
    fwb_rx rx;
    fwb_slot ring[FWB_RING_CAPACITY];
    uint16_t head, count;        /* oldest unacknowledged reading at ring[head] */
    uint32_t next_seq, dropped, last_sample_ms;
    uint32_t frames_sent, retransmits, acked_seq;
    uint8_t polled;              /* addressed mode: DATA frames allowed in reply to the last poll */
    fwb_msg msg;                 /* scratch, kept off the stack */
    uint8_t tx[FWB_MAX_WIRE];
} fwb_node;

/* Set up and announce (0x00, HELLO, one METRIC per metric). Returns 0, or -1 on a bad config. */
int fwb_node_init(fwb_node *n, const fwb_node_config *cfg, const fwb_port *port);
void fwb_node_rx(fwb_node *n, uint8_t byte);
void fwb_node_poll(fwb_node *n);
void fwb_node_log(fwb_node *n, uint8_t level, const char *text);

#endif
