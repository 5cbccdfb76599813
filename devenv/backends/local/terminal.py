"""PTY plumbing for shell sessions: window size, the client's tty modes, controlling tty.

Kept apart from the session logic because it is all ioctl/termios detail.
"""

from __future__ import annotations

import fcntl
import struct
import termios
from collections.abc import Mapping

from asyncssh import constants as c

# SSH terminal mode opcodes (RFC 4254 section 8) -> termios names.
_CC = {
    c.PTY_VINTR: "VINTR",
    c.PTY_VQUIT: "VQUIT",
    c.PTY_VERASE: "VERASE",
    c.PTY_VKILL: "VKILL",
    c.PTY_VEOF: "VEOF",
    c.PTY_VEOL: "VEOL",
    c.PTY_VEOL2: "VEOL2",
    c.PTY_VSTART: "VSTART",
    c.PTY_VSTOP: "VSTOP",
    c.PTY_VSUSP: "VSUSP",
    c.PTY_VREPRINT: "VREPRINT",
    c.PTY_WERASE: "VWERASE",
    c.PTY_VLNEXT: "VLNEXT",
    c.PTY_VDISCARD: "VDISCARD",
}
_IFLAG = {
    c.PTY_IGNPAR: "IGNPAR",
    c.PTY_PARMRK: "PARMRK",
    c.PTY_INPCK: "INPCK",
    c.PTY_ISTRIP: "ISTRIP",
    c.PTY_INLCR: "INLCR",
    c.PTY_IGNCR: "IGNCR",
    c.PTY_ICRNL: "ICRNL",
    c.PTY_IUCLC: "IUCLC",
    c.PTY_IXON: "IXON",
    c.PTY_IXANY: "IXANY",
    c.PTY_IXOFF: "IXOFF",
    c.PTY_IMAXBEL: "IMAXBEL",
    c.PTY_IUTF8: "IUTF8",
}
_OFLAG = {
    c.PTY_OPOST: "OPOST",
    c.PTY_OLCUC: "OLCUC",
    c.PTY_ONLCR: "ONLCR",
    c.PTY_OCRNL: "OCRNL",
    c.PTY_ONOCR: "ONOCR",
    c.PTY_ONLRET: "ONLRET",
}
_CFLAG = {c.PTY_PARENB: "PARENB", c.PTY_PARODD: "PARODD"}
_LFLAG = {
    c.PTY_ISIG: "ISIG",
    c.PTY_ICANON: "ICANON",
    c.PTY_XCASE: "XCASE",
    c.PTY_ECHO: "ECHO",
    c.PTY_ECHOE: "ECHOE",
    c.PTY_ECHOK: "ECHOK",
    c.PTY_ECHONL: "ECHONL",
    c.PTY_NOFLSH: "NOFLSH",
    c.PTY_TOSTOP: "TOSTOP",
    c.PTY_IEXTEN: "IEXTEN",
    c.PTY_ECHOCTL: "ECHOCTL",
    c.PTY_ECHOKE: "ECHOKE",
    c.PTY_PENDIN: "PENDIN",
}
_DISABLED = 255
"""SSH's "no character" value for a control character."""


def set_window_size(
    fd: int, width: int, height: int, pixwidth: int = 0, pixheight: int = 0
) -> None:
    """Set the pty size; the kernel sends SIGWINCH to the foreground process group."""
    if width <= 0 or height <= 0:
        return
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, pixwidth, pixheight))


def _set_flag(flags: int, name: str, on: bool) -> int:
    bit: int | None = getattr(termios, name, None)
    if bit is None:
        return flags
    return flags | bit if on else flags & ~bit


def apply_modes(fd: int, modes: Mapping[int, int]) -> None:
    """Apply the tty modes the client sent (erase key, echo, ...) as sshd does."""
    if not modes:
        return
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = termios.tcgetattr(fd)
    for opcode, value in modes.items():
        if opcode in _CC:
            index = getattr(termios, _CC[opcode], None)
            if index is not None:
                cc[index] = bytes([0 if value == _DISABLED else value & 0xFF])
        elif opcode in _IFLAG:
            iflag = _set_flag(iflag, _IFLAG[opcode], bool(value))
        elif opcode in _OFLAG:
            oflag = _set_flag(oflag, _OFLAG[opcode], bool(value))
        elif opcode in _LFLAG:
            lflag = _set_flag(lflag, _LFLAG[opcode], bool(value))
        elif opcode in _CFLAG:
            cflag = _set_flag(cflag, _CFLAG[opcode], bool(value))
        elif opcode in (c.PTY_CS7, c.PTY_CS8) and value:
            cflag = (cflag & ~termios.CSIZE) | (termios.CS7 if opcode == c.PTY_CS7 else termios.CS8)
    termios.tcsetattr(fd, termios.TCSANOW, [iflag, oflag, cflag, lflag, ispeed, ospeed, cc])


def take_controlling_tty() -> None:
    """``preexec_fn`` after ``setsid``: make stdin (the pty) the controlling terminal.

    Without it the shell has no job control and never gets SIGHUP/SIGWINCH.
    """
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
