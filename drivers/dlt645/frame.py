"""The frame skeleton DL/T 645 shares with CJ/T 188 lives in :mod:`drivers.meter_common.frame`."""

from drivers.meter_common.frame import END, START, WAKE, Frame, Layout, checksum, decode, encode, scan

__all__ = ["END", "START", "WAKE", "Frame", "Layout", "checksum", "decode", "encode", "scan"]
