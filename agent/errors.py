"""Typed errors. Drivers and buses raise these; the scheduler turns them into down/up events."""


class EdgeAgentError(Exception):
    """Base class of every error the agent raises on purpose."""


class ConfigError(EdgeAgentError):
    """The configuration is invalid. ``problems`` lists every finding (path, line, message)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class DeviceError(EdgeAgentError):
    """A device could not be read or written."""


class DeviceTimeout(DeviceError):
    """The device did not answer in time."""


class ProtocolError(DeviceError):
    """The device answered with something we cannot accept (bad CRC, short frame, garbage)."""


class DeviceException(ProtocolError):
    """The device answered with a protocol-level exception (e.g. Modbus exception code)."""

    def __init__(self, message: str, *, code: int | None = None):
        self.code = code
        super().__init__(message)


class BusUnavailable(DeviceError):
    """The transport (serial port, TCP connection, I2C bus) is not available."""


class CommandRefused(EdgeAgentError):
    """A command was refused; the message is the reason sent back on the result topic."""


def describe_error(e: BaseException) -> str:
    """One line naming what went wrong (OSError texts already name the file or address)."""
    if isinstance(e, OSError) and e.strerror:
        where = f": {e.filename}" if e.filename else ""
        return f"{e.strerror}{where}"
    text = str(e) or type(e).__name__
    return text.splitlines()[0] if isinstance(e, OSError) else f"{type(e).__name__}: {text.splitlines()[0]}"
