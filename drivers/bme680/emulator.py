"""A register-level emulator of the Bosch BME680 on an I2C bus (the ``busio.I2C`` duck type).

256-byte register file, register pointer with auto-increment, burst writes as (register, value)
pairs, chip id 0x61 at 0xD0, a calibration block, soft reset (0xB6 to 0xE0), and a measurement
that fills the data block (0x1D..0x2D) when ctrl_meas (0x74) is written with mode = forced.
The unmodified ``adafruit_bme680`` library runs against it as against the chip.
"""

from __future__ import annotations

import errno
import random
import struct
import threading
from dataclasses import dataclass

CHIP_ID = 0x61
REG_CHIP_ID, REG_VARIANT, REG_RESET, REG_CTRL_MEAS, REG_STATUS = 0xD0, 0xF0, 0xE0, 0x74, 0x1D


@dataclass
class Calibration:
    """Calibration parameters as the datasheet names them (plausible values of a real part)."""

    t1: int = 26_100
    t2: int = 26_200
    t3: int = 3
    p1: int = 36_500
    p2: int = -10_400
    p3: int = 88
    p4: int = 6_800
    p5: int = -120
    p6: int = 30
    p7: int = 32
    p8: int = -300
    p9: int = -2_500
    p10: int = 30
    h1: int = 0x320
    h2: int = 0x3E0
    h3: int = 0
    h4: int = 45
    h5: int = 20
    h6: int = 120
    h7: int = -100
    g1: int = -30
    g2: int = -12_000
    g3: int = 18
    res_heat_range: int = 1
    res_heat_val: int = 40
    range_sw_err: int = 1

    def write_to(self, regs: bytearray) -> None:
        regs[0x8A:0x8C] = struct.pack("<h", self.t2)
        regs[0x8C] = self.t3 & 0xFF
        regs[0x8E:0x92] = struct.pack("<Hh", self.p1, self.p2)
        regs[0x92] = self.p3 & 0xFF
        regs[0x94:0x98] = struct.pack("<hh", self.p4, self.p5)
        regs[0x98] = self.p7 & 0xFF
        regs[0x99] = self.p6 & 0xFF
        regs[0x9C:0xA0] = struct.pack("<hh", self.p8, self.p9)
        regs[0xA0] = self.p10 & 0xFF
        regs[0xE1] = (self.h2 >> 4) & 0xFF  # par_h2 = E1 << 4 | E2 >> 4
        regs[0xE2] = ((self.h2 & 0x0F) << 4) | (self.h1 & 0x0F)  # par_h1 = E3 << 4 | E2 & 0x0F
        regs[0xE3] = (self.h1 >> 4) & 0xFF
        regs[0xE4:0xE9] = struct.pack("<bbbBb", self.h3, self.h4, self.h5, self.h6, self.h7)
        regs[0xE9:0xED] = struct.pack("<Hh", self.t1, self.g2)
        regs[0xED:0xEF] = struct.pack("<bb", self.g1, self.g3)
        regs[0x00] = self.res_heat_val & 0xFF
        regs[0x02] = (self.res_heat_range & 0x03) << 4
        regs[0x04] = (self.range_sw_err & 0x0F) << 4


@dataclass
class RawValues:
    """ADC values the next forced measurement reports."""

    temp_adc: int = 488_000
    press_adc: int = 345_000
    hum_adc: int = 23_500
    gas_adc: int = 420
    gas_range: int = 6


class Bme680Emulator:
    """Emulated chip behind a ``busio.I2C``-compatible bus object."""

    def __init__(self, *, address: int = 0x77, calibration: Calibration | None = None,
                 raw: RawValues | None = None, vary: bool = False, seed: int | None = None,
                 chip_id: int = CHIP_ID):
        self.address = address
        self.chip_id = chip_id
        self.threads: set[int] = set()  # threads that used the bus
        self.calibration = calibration or Calibration()
        self.raw = raw or RawValues()
        self.vary = vary
        self.rng = random.Random(seed)
        self.regs = bytearray(256)
        self.pointer = 0
        self.measurements = 0
        self.transactions = 0
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.regs[:] = bytes(256)
        self.regs[REG_CHIP_ID] = self.chip_id
        self.regs[REG_VARIANT] = 0x00  # BME680 (0x01 would be BME688)
        self.calibration.write_to(self.regs)

    # -- busio.I2C duck type ---------------------------------------------------------------------

    def try_lock(self) -> bool:
        return self._lock.acquire(blocking=False)

    def unlock(self) -> None:
        self._lock.release()

    def scan(self) -> list[int]:
        return [self.address]

    def _check(self, address: int) -> None:
        self.transactions += 1
        self.threads.add(threading.get_ident())
        if address != self.address:
            raise OSError(errno.EREMOTEIO, f"no ACK from I2C address {address:#04x}")

    def writeto(self, address: int, buffer, *, start: int = 0, end: int | None = None) -> None:
        self._check(address)
        data = bytes(buffer[start:end])
        if not data:
            return  # probe
        if len(data) == 1:
            self.pointer = data[0]
            return
        if len(data) % 2:
            raise OSError(errno.EIO, "BME680 burst write must be (register, value) pairs")
        for i in range(0, len(data), 2):
            self._write_register(data[i], data[i + 1])

    def readfrom_into(self, address: int, buffer, *, start: int = 0, end: int | None = None) -> None:
        self._check(address)
        end = len(buffer) if end is None else end
        for i in range(start, end):
            buffer[i] = self.regs[self.pointer]
            self.pointer = (self.pointer + 1) & 0xFF

    def writeto_then_readfrom(self, address: int, out_buffer, in_buffer, *, out_start: int = 0,
                              out_end: int | None = None, in_start: int = 0, in_end: int | None = None) -> None:
        self.writeto(address, out_buffer, start=out_start, end=out_end)
        self.readfrom_into(address, in_buffer, start=in_start, end=in_end)

    def deinit(self) -> None:
        pass

    # -- chip behaviour --------------------------------------------------------------------------

    def _write_register(self, reg: int, value: int) -> None:
        if reg == REG_RESET:
            if value == 0xB6:
                self._reset()
            return
        if reg in (REG_CHIP_ID, REG_VARIANT) or 0x89 <= reg <= 0xA1 or 0xE1 <= reg <= 0xEE:
            return  # read-only
        self.regs[reg] = value
        if reg == REG_CTRL_MEAS and value & 0x03 == 0x01:
            self._measure()
            self.regs[REG_CTRL_MEAS] = value & 0xFC  # back to sleep mode once done

    def _measure(self) -> None:
        if self.vary:
            r = self.raw
            r.temp_adc += self.rng.randint(-300, 300)
            r.press_adc += self.rng.randint(-40, 40)
            r.hum_adc = max(0, r.hum_adc + self.rng.randint(-60, 60))
            r.gas_adc = min(1023, max(1, r.gas_adc + self.rng.randint(-5, 5)))
        r = self.raw
        d = self.regs
        d[REG_STATUS] = 0x80  # new_data_0
        d[0x1F:0x22] = ((r.press_adc & 0xFFFFF) << 4).to_bytes(3, "big")
        d[0x22:0x25] = ((r.temp_adc & 0xFFFFF) << 4).to_bytes(3, "big")
        d[0x25:0x27] = (r.hum_adc & 0xFFFF).to_bytes(2, "big")
        d[0x2A] = (r.gas_adc >> 2) & 0xFF
        d[0x2B] = ((r.gas_adc & 0x03) << 6) | 0x20 | 0x10 | (r.gas_range & 0x0F)  # gas_valid, heat_stab
        self.measurements += 1
