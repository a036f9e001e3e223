/* Cortex-M port of the reference node for the ARM MPS2 AN385 board (qemu-system-arm -M mps2-an385):
 * CMSDK APB UART0 at 0x40004000 is the node's UART, SysTick gives the millisecond tick.
 * The sensors are synthetic; a real board reads its ADC / one-wire / I2C in sample(). */
#include <stdint.h>

#include "fwb_node.h"

#define SYSCLK_HZ 25000000u
#define BAUD 115200u

typedef struct {
    volatile uint32_t DATA, STATE, CTRL, INTSTATUS, BAUDDIV;
} cmsdk_uart;
#define UART0 ((cmsdk_uart *)0x40004000u)
#define UART_TX_FULL 0x1u
#define UART_RX_FULL 0x2u

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

static volatile uint32_t ticks;
void fwb_systick(void) { ticks++; }

static uint32_t millis(void *ctx) { (void)ctx; return ticks; }

static void uart_write(void *ctx, const uint8_t *p, size_t n) {
    (void)ctx;
    while (n--) {
        while (UART0->STATE & UART_TX_FULL) {
        }
        UART0->DATA = *p++;
    }
}

static uint32_t samples;
static int32_t outputs[2];

static int sample(void *ctx, int32_t *raw) {
    (void)ctx;
    samples++;
    raw[0] = (int32_t)samples;                       /* sample number (= seq) */
    raw[1] = 2000 + (int32_t)(samples % 100u);       /* temperature, 0.01 degC */
    raw[2] = outputs[0];
    return 0;
}

static int set_output(void *ctx, uint8_t index, int32_t value) {
    (void)ctx;
    if (index >= 2) return -1;
    outputs[index] = value;
    return 0;
}

/* The boot id must differ at every boot. A real MCU takes it from its hardware RNG (STM32 RNG,
 * RP2040 ROSC, esp_random()); the emulated board has none, so it reads the host's /dev/urandom
 * through semihosting (never the host clock: two boots in one second would share an id). */
static uint32_t semihost(uint32_t op, const void *arg) {
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static uint32_t boot_id(void) {
    static const char path[] = "/dev/urandom";
    uint32_t x = 0;
    uint32_t open_args[3] = {(uint32_t)path, 0u /* "r" */, sizeof path - 1u};
    uint32_t fd = semihost(0x01u, open_args);                     /* SYS_OPEN */
    if (fd != 0xFFFFFFFFu) {
        uint32_t read_args[3] = {fd, (uint32_t)&x, sizeof x};
        if (semihost(0x06u, read_args) != 0u) x = 0;              /* SYS_READ: bytes NOT read */
        semihost(0x02u, &fd);                                     /* SYS_CLOSE */
    }
    if (!x) { /* no host file access: mix host time and start-up clock (weaker) */
        x = semihost(0x11u, 0) * 2654435761u ^ semihost(0x10u, 0) * 40503u ^ 0xA3850000u;
        x ^= x >> 16; x *= 0x7feb352du; x ^= x >> 15;
    }
    return x ? x : 1u;
}

static const fwb_metric_desc METRICS[] = {
    {"sample", "", 0, FWB_COUNTER},
    {"temperature", "degC", -2, FWB_GAUGE},
    {"output0", "", 0, FWB_STATE},
};

static fwb_node node;

int main(void) {
    UART0->BAUDDIV = SYSCLK_HZ / BAUD;
    UART0->CTRL = 0x3u; /* TX and RX enabled */
    SYST_RVR = SYSCLK_HZ / 1000u - 1u;
    SYST_CVR = 0;
    SYST_CSR = 0x7u; /* processor clock, interrupt, enable */
    fwb_node_config cfg = {0xA3850001u, boot_id(), "an385-1.0.0", METRICS, 3, FWB_NO_ADDR, 1000u, 2000u, 4u};
    fwb_port port = {millis, uart_write, sample, set_output, 0};
    fwb_node_init(&node, &cfg, &port);
    fwb_node_log(&node, 1, "an385 node up");
    for (;;) {
        while (UART0->STATE & UART_RX_FULL) fwb_node_rx(&node, (uint8_t)UART0->DATA);
        fwb_node_poll(&node);
    }
}
