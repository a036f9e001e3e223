/* Firmware bridge protocol v1: framing (COBS + CRC-16/CCITT-FALSE + 0x00) and message codec.
 * Portable C99, no heap, no stdio. See docs/firmware-bridge.md. */
#ifndef FWB_PROTO_H
#define FWB_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define FWB_VERSION 1u
#define FWB_FLAG_ADDR 0x01u
#define FWB_MAX_BODY 250u                  /* header + payload, CRC excluded */
#define FWB_MAX_COBS (FWB_MAX_BODY + 3u)   /* body + CRC, COBS-encoded */
#define FWB_MAX_WIRE (FWB_MAX_COBS + 1u)   /* with the 0x00 delimiter */
#define FWB_MAX_STR 32u
#define FWB_MAX_VALUES 32u
#define FWB_MAX_LOG (FWB_MAX_BODY - 4u)   /* LOG text bytes: fits an addressed frame too */
#define FWB_NO_ADDR (-1)

enum fwb_type {
    FWB_HELLO = 0x01, FWB_METRIC = 0x02, FWB_DATA = 0x10, FWB_ACK = 0x11,
    FWB_TIME_REQ = 0x20, FWB_TIME_RESP = 0x21, FWB_COMMAND = 0x30, FWB_RESULT = 0x31, FWB_LOG = 0x40
};
enum fwb_op { FWB_OP_SET_INTERVAL = 1, FWB_OP_SET_OUTPUT = 2, FWB_OP_DESCRIBE = 3 };
enum fwb_status { FWB_ST_OK = 0, FWB_ST_UNKNOWN_OP = 1, FWB_ST_BAD_VALUE = 2 };
enum fwb_kind { FWB_GAUGE = 0, FWB_COUNTER = 1, FWB_STATE = 2 };

/* decoder results (negative) */
enum fwb_err {
    FWB_OK = 0, FWB_E_COBS = -1, FWB_E_CRC = -2, FWB_E_SHORT = -3, FWB_E_VERSION = -4,
    FWB_E_TYPE = -5, FWB_E_TRAILING = -6, FWB_E_RANGE = -7, FWB_E_SPACE = -8
};

typedef struct { uint8_t len; char s[FWB_MAX_STR]; } fwb_str;

typedef struct {
    uint8_t type;
    int addr; /* FWB_NO_ADDR or 0..255 */
    union {
        struct { uint32_t node_id, boot_id, interval_ms; uint16_t ring_capacity; uint8_t n_metrics; fwb_str fw_version; } hello;
        struct { uint8_t index; int8_t scale; uint8_t kind; fwb_str name, unit; } metric;
        struct { uint32_t boot_id, seq, node_ms; uint8_t n; uint8_t index[FWB_MAX_VALUES]; int32_t raw[FWB_MAX_VALUES]; } data;
        struct { uint32_t boot_id, seq; } ack;
        struct { uint32_t token; } time_req;
        struct { uint32_t token, boot_id, node_ms, oldest_seq, dropped; } time_resp;
        struct { uint16_t id; uint8_t op, target; int32_t value; } command;
        struct { uint16_t id; uint8_t status; int32_t value; } result;
        struct { uint8_t level; uint8_t len; char text[FWB_MAX_LOG]; } log;
    } u;
} fwb_msg;

uint16_t fwb_crc16(const uint8_t *p, size_t n, uint16_t crc);
size_t fwb_cobs_encode(const uint8_t *in, size_t n, uint8_t *out);
/* returns decoded length or FWB_E_COBS; out must hold n bytes */
int fwb_cobs_decode(const uint8_t *in, size_t n, uint8_t *out);

/* message -> body; returns body length or a negative fwb_err */
int fwb_encode_body(const fwb_msg *m, uint8_t *body, size_t cap);
int fwb_decode_body(const uint8_t *body, size_t n, fwb_msg *m);
/* message -> wire bytes (with delimiter); out must hold FWB_MAX_WIRE; returns length or < 0 */
int fwb_encode(const fwb_msg *m, uint8_t *out, size_t cap);
/* one frame without its delimiter -> message; returns FWB_OK or a negative fwb_err */
int fwb_decode(const uint8_t *frame, size_t n, fwb_msg *m);
void fwb_str_set(fwb_str *dst, const char *s);

/* The standard units (docs/firmware-bridge.md, "Units"); "" is a plain number or count. */
#define FWB_STANDARD_UNITS "", "degC", "%", "%RH", "Pa", "hPa", "kPa", "bar", "V", "mV", "A", "mA", "W", "kW", \
    "VA", "var", "Wh", "kWh", "Hz", "ppm", "ppb", "ug/m3", "lx", "m/s", "m", "mm", "L", "m3", "L/min", "m3/h", \
    "s", "ms", "dB", "dBA", "deg", "rpm"
int fwb_unit_standard(const char *unit); /* 1 if unit is one of FWB_STANDARD_UNITS */

/* Byte-at-a-time receiver: feed bytes; returns 1 when *m holds a new valid message. */
typedef struct {
    uint8_t buf[FWB_MAX_COBS];
    uint16_t len;
    uint8_t overflow;
    uint32_t bad_frames;
} fwb_rx;

void fwb_rx_init(fwb_rx *rx);
int fwb_rx_feed(fwb_rx *rx, uint8_t byte, fwb_msg *m);

#endif
