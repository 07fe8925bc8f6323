"""Teleop input devices behind one interface (no ROS): keyboard in a terminal, gamepad (pygame), SpaceMouse
(pyspacemouse). Each `poll()` returns a `TeleopInput`: a normalised end-effector twist in [-1, 1]^6, the gripper
command, and the button events since the last poll.

Keyboard: the terminal is put in cbreak mode (no line buffering, no echo, output processing kept, so it works over
SSH and next to other processes' log lines). A terminal reports key presses, not releases: a press moves for
`hold_s` seconds, and the terminal's auto-repeat keeps a held key moving.
"""
from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from pydantic import BaseModel, Field

EVENTS = ("start", "stop", "success", "failure", "rerecord", "takeover")
AXES = ("x", "y", "z", "roll", "pitch", "yaw")
KEY_NAMES = {"space": " ", "enter": "\n", "tab": "\t", "backspace": "\x7f", "esc": "\x1b"}


@dataclass
class TeleopInput:
    twist: np.ndarray = field(default_factory=lambda: np.zeros(6))   # (vx, vy, vz, wx, wy, wz) in [-1, 1]
    gripper_toggle: bool = False
    events: list[str] = field(default_factory=list)                  # names from EVENTS, in order


class InputDevice(Protocol):
    name: str

    def poll(self) -> TeleopInput: ...

    def close(self) -> None: ...


# ---- keyboard ------------------------------------------------------------------------------------------------------
class KeyMap(BaseModel, extra="forbid"):
    """One key per motion direction and per button (a character, or space / enter / tab / backspace / esc)."""

    x_plus: str = "w"
    x_minus: str = "s"
    y_plus: str = "a"
    y_minus: str = "d"
    z_plus: str = "r"
    z_minus: str = "f"
    roll_plus: str = "u"
    roll_minus: str = "o"
    pitch_plus: str = "i"
    pitch_minus: str = "k"
    yaw_plus: str = "j"
    yaw_minus: str = "l"
    gripper: str = "space"
    start: str = "enter"
    stop: str = "x"
    success: str = "y"
    failure: str = "n"
    rerecord: str = "b"
    takeover: str = "t"

    def table(self) -> dict[str, tuple[str, object]]:
        """character -> ('axis', (index, sign)) | ('gripper', None) | ('event', name); refuses duplicate keys."""
        out: dict[str, tuple[str, object]] = {}
        for name, key in self.model_dump().items():
            char = KEY_NAMES.get(key, key)
            if len(char) != 1:
                raise ValueError(f"teleop key '{name}': {key!r} is not one character or a key name {sorted(KEY_NAMES)}")
            if char in out:
                raise ValueError(f"teleop key '{name}': {key!r} is already bound")
            if name in EVENTS:
                out[char] = ("event", name)
            elif name == "gripper":
                out[char] = ("gripper", None)
            else:
                axis, sign = name.rsplit("_", 1)
                out[char] = ("axis", (AXES.index(axis), 1.0 if sign == "plus" else -1.0))
        return out

    def describe(self) -> str:
        """The bindings in one line, for the operator."""
        k = self
        return (f"move {k.x_plus}{k.x_minus} {k.y_plus}{k.y_minus} {k.z_plus}{k.z_minus}, rotate {k.roll_plus}"
                f"{k.roll_minus} {k.pitch_plus}{k.pitch_minus} {k.yaw_plus}{k.yaw_minus}, gripper {k.gripper}, "
                f"start {k.start}, stop {k.stop}, success {k.success}, failure {k.failure}, re-record {k.rerecord}, "
                f"take over {k.takeover}")


class KeySource(Protocol):
    def read(self) -> str:
        """Characters typed since the last call (non-blocking)."""


class TerminalKeys:
    """Keys from a terminal file descriptor in cbreak mode; the previous mode is restored on close."""

    def __init__(self, fd: int | None = None):
        self.fd = sys.stdin.fileno() if fd is None else fd
        if not os.isatty(self.fd):
            raise OSError(f"fd {self.fd} is not a terminal: run the teleop node in a terminal (or over SSH with -t)")
        self.saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)

    def read(self) -> str:
        chars = []
        while select.select([self.fd], [], [], 0)[0]:
            data = os.read(self.fd, 64)
            if not data:
                break
            chars.append(data.decode(errors="ignore"))
        return "".join(chars)

    def close(self) -> None:
        termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


class QueueKeys:
    """Keys fed by a program (tests, GUIs): `push('w')`."""

    def __init__(self):
        self.pending: deque[str] = deque()

    def push(self, chars: str) -> None:
        self.pending.extend(chars)

    def read(self) -> str:
        out = "".join(self.pending)
        self.pending.clear()
        return out

    def close(self) -> None:
        pass


class Keyboard:
    name = "keyboard"

    def __init__(self, keys: KeySource, keymap: KeyMap = KeyMap(), hold_s: float = 0.15, clock=time.monotonic):
        self.keys, self.table, self.hold_s, self.clock = keys, keymap.table(), hold_s, clock
        self.until = np.zeros(6)        # per axis: moving until this time
        self.direction = np.zeros(6)

    def poll(self) -> TeleopInput:
        now = self.clock()
        out = TeleopInput()
        for char in self.keys.read().replace("\r", "\n"):
            kind, arg = self.table.get(char, (None, None))
            if kind == "axis":
                index, sign = arg
                self.direction[index], self.until[index] = sign, now + self.hold_s
            elif kind == "gripper":
                out.gripper_toggle = not out.gripper_toggle
            elif kind == "event":
                out.events.append(arg)
        out.twist = np.where(self.until > now, self.direction, 0.0)
        return out

    def close(self) -> None:
        self.keys.close()


# ---- gamepad and SpaceMouse ----------------------------------------------------------------------------------------
class GamepadMap(BaseModel, extra="forbid"):
    """Axis index per twist component (-1: unused) with a sign, and button indices (SDL numbering; Xbox layout
    defaults: left stick x/y, triggers z, right stick roll/pitch; A gripper, B failure, X re-record, Y success,
    Start start, Back stop, RB take over)."""

    axes: list[int] = [1, 0, 4, 3, 2, 5]
    signs: list[float] = [-1.0, -1.0, -1.0, 1.0, -1.0, 1.0]
    deadzone: float = Field(0.1, ge=0, lt=1)
    gripper: int = 0
    start: int = 7
    stop: int = 6
    success: int = 3
    failure: int = 1
    rerecord: int = 2
    takeover: int = 5


class Gamepad:
    """A gamepad through pygame's joystick module (SDL); needs no window."""

    name = "gamepad"

    def __init__(self, mapping: GamepadMap = GamepadMap(), index: int = 0):
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        import pygame

        self.pygame = pygame
        pygame.display.init()   # the event pump needs it (dummy video driver); no audio
        pygame.joystick.init()
        if pygame.joystick.get_count() <= index:
            raise OSError(f"gamepad {index} not found ({pygame.joystick.get_count()} connected)")
        self.stick = pygame.joystick.Joystick(index)
        self.stick.init()
        self.map = mapping
        self.pressed: set[int] = set()

    def poll(self) -> TeleopInput:
        self.pygame.event.pump()
        m = self.map
        raw = [self.stick.get_axis(a) if 0 <= a < self.stick.get_numaxes() else 0.0 for a in m.axes]
        twist = np.asarray(raw) * np.asarray(m.signs)
        out = TeleopInput(twist=np.where(np.abs(twist) > m.deadzone, np.clip(twist, -1, 1), 0.0))
        down = {b for b in range(self.stick.get_numbuttons()) if self.stick.get_button(b)}
        for b in sorted(down - self.pressed):   # rising edges only
            if b == m.gripper:
                out.gripper_toggle = True
            out.events += [e for e in EVENTS if getattr(m, e) == b]
        self.pressed = down
        return out

    def close(self) -> None:
        self.pygame.quit()


class SpaceMouse:
    """A 3Dconnexion SpaceMouse through pyspacemouse (HID; needs the hidapi system library). Left button toggles
    the gripper, right button toggles take-over; episode buttons stay on the keyboard."""

    name = "spacemouse"

    def __init__(self, deadzone: float = 0.05):
        try:
            import pyspacemouse
            self.device = pyspacemouse.open(axis_convention=pyspacemouse.AxisConvention.ROS)
        except (ImportError, OSError, RuntimeError, ValueError) as err:
            raise OSError(f"SpaceMouse not available: {err} (needs libhidapi-hidraw0 and read access to "
                          "/dev/hidraw*)") from err
        self.deadzone = deadzone
        self.pressed: tuple[int, ...] = ()

    def poll(self) -> TeleopInput:
        state = self.device.read()
        twist = np.array([state.x, state.y, state.z, state.roll, state.pitch, state.yaw], dtype=float)
        out = TeleopInput(twist=np.where(np.abs(twist) > self.deadzone, np.clip(twist, -1, 1), 0.0))
        buttons = tuple(state.buttons)
        for i, (now, before) in enumerate(zip(buttons, self.pressed or (0,) * len(buttons))):
            if now and not before:
                if i == 0:
                    out.gripper_toggle = True
                elif i == 1:
                    out.events.append("takeover")
        self.pressed = buttons
        return out

    def close(self) -> None:
        self.device.close()


# ---- all devices together -----------------------------------------------------------------------------------------
def open_devices(names: list[str], keys: KeyMap, hold_s: float, gamepad: GamepadMap) -> tuple[list, list[str]]:
    """The named devices; one that cannot open is reported in the second list and skipped."""
    devices, errors = [], []
    for name in names:
        try:
            if name == "keyboard":
                devices.append(Keyboard(TerminalKeys(), keys, hold_s))
            elif name == "gamepad":
                devices.append(Gamepad(gamepad))
            elif name == "spacemouse":
                devices.append(SpaceMouse())
            else:
                errors.append(f"unknown device {name!r} (keyboard, gamepad, spacemouse)")
        except OSError as err:
            errors.append(f"{name}: {err}")
    return devices, errors


def poll_all(devices: list, on_error) -> TeleopInput:
    """The devices' inputs summed (twist clipped to [-1, 1]), toggles combined, events in order. A device that fails
    (unplugged: hidapi raises OSError, pygame.error is a RuntimeError) is reported to on_error(device, err) and
    counts as zero."""
    merged = TeleopInput()
    for device in devices:
        try:
            got = device.poll()
        except (OSError, RuntimeError) as err:
            on_error(device, err)
            continue
        merged.twist = merged.twist + got.twist
        merged.gripper_toggle ^= got.gripper_toggle
        merged.events += got.events
    merged.twist = np.clip(merged.twist, -1.0, 1.0)
    return merged


# ---- twist -> end-effector delta -----------------------------------------------------------------------------------
def ee_delta(twist: np.ndarray, gripper_width: float, max_step_m: float, max_step_rad: float) -> np.ndarray:
    """One EE-space action (EE_SPACE_NAMES order): translation twist[:3]·max_step_m (m), rotation twist[3:]·
    max_step_rad as an axis-angle vector (rad; small per step), absolute gripper width (m)."""
    twist = np.clip(np.asarray(twist, dtype=float), -1.0, 1.0)
    return np.r_[twist[:3] * max_step_m, twist[3:] * max_step_rad, gripper_width]
