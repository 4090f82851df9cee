"""Camera motion: chosen from the prompt's words and the seed, applied as a moving crop.

A :class:`Motion` says where the camera looks at each moment as a view
rectangle over the fitted first frame: ``zoom`` (above 1 is closer) and a
centre offset as a fraction of the frame.  At the first frame the view is
exactly the fitted image; the motions then ease in and out (smoothstep).

Words recognised (case-insensitive; several can combine):

========== ==========================================================
motion     words
========== ==========================================================
zoom_in    zoom in, push in, dolly in, close-up, closer
dolly_out  zoom out, dolly out, pull back, pull out, pulls away
pan_left   pan left, pans left, panning left
pan_right  pan right, pans right, panning right
tilt_up    tilt up, tilts up, crane up
tilt_down  tilt down, tilts down, crane down
orbit      orbit, orbits, arc shot, circles around, rotate around
========== ==========================================================

With none of them the camera drifts gently (a slow push-in with a slight
sideways drift whose direction comes from the seed).  A motion named in
the negative prompt is left out.

Example:
    >>> from pika_tasks.emulator._motion import choose_motion
    >>> motion = choose_motion("the camera orbits and dolly out", "", seed=1)
    >>> motion.kinds
    ('dolly_out', 'orbit')
    >>> motion.view(0.0)
    (1.0, 0.0, 0.0)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from pika_tasks.emulator._faults import unit_hash

_PATTERNS: dict[str, re.Pattern[str]] = {
    "zoom_in": re.compile(
        r"\b(zoom(s|ing)? in|push(es|ing)? in|dolly(ing)? in|dollies in|close[- ]?up|closer)\b"
    ),
    "dolly_out": re.compile(
        r"\b(zoom(s|ing)? out|dolly(ing)? out|dollies out|pull(s|ing)? (back|out|away))\b"
    ),
    "pan_left": re.compile(r"\bpan(s|ning)? (to the )?left\b"),
    "pan_right": re.compile(r"\bpan(s|ning)? (to the )?right\b"),
    "tilt_up": re.compile(r"\b(tilt(s|ing)?|crane(s|ing)?) up\b"),
    "tilt_down": re.compile(r"\b(tilt(s|ing)?|crane(s|ing)?) down\b"),
    "orbit": re.compile(r"\b(orbit(s|ing)?|arc shot|circl(e|es|ing) around|rotat\w* around)\b"),
}

KINDS: tuple[str, ...] = (*sorted(_PATTERNS), "drift")
"""Every motion kind, ``drift`` being the default when the prompt names none."""

MAX_REACH = 0.24
"""Largest distance the view moves past the fitted frame, as a fraction of it."""


def smoothstep(p: float) -> float:
    """Ease in and out: 0 at 0, 1 at 1, with zero slope at both ends."""
    p = min(1.0, max(0.0, p))
    return p * p * (3.0 - 2.0 * p)


@dataclass(frozen=True)
class Motion:
    """A camera path over the fitted first frame.

    Attributes:
        kinds: the motions it combines, sorted (``("drift",)`` by default).
        zoom_end: zoom at the last frame (1 = as the first frame, 1.3 = closer).
        dx: horizontal offset of the view centre at the end, fraction of width.
        dy: vertical offset of the view centre at the end, fraction of height.
        arc: sideways swing at mid-path (orbit), fraction of width.
    """

    kinds: tuple[str, ...]
    zoom_end: float = 1.0
    dx: float = 0.0
    dy: float = 0.0
    arc: float = 0.0

    @property
    def label(self) -> str:
        """Human-readable name, e.g. ``"dolly out + orbit"``."""
        return " + ".join(kind.replace("_", " ") for kind in self.kinds)

    def view(self, p: float) -> tuple[float, float, float]:
        """Zoom and centre offset ``(zoom, x, y)`` at progress ``p`` in ``[0, 1]``.

        Offsets are fractions of the frame's width and height; the view
        never leaves the fitted frame by more than :data:`MAX_REACH`.
        """
        s = smoothstep(p)
        zoom = 1.0 + (self.zoom_end - 1.0) * s
        x = self.dx * s + self.arc * math.sin(math.pi * s)
        y = self.dy * s
        half = 0.5 / zoom
        limit = 0.5 + MAX_REACH - half
        return zoom, _clamp(x, limit), _clamp(y, limit)


def _clamp(value: float, limit: float) -> float:
    limit = max(0.0, limit)
    return 0.0 if value == 0.0 else min(limit, max(-limit, value))


def motion_kinds(prompt: str, negative_prompt: str = "") -> tuple[str, ...]:
    """The motion kinds the prompt asks for, minus those the negative prompt names."""
    text, negative = prompt.lower(), negative_prompt.lower()
    kinds = tuple(
        kind
        for kind, pattern in sorted(_PATTERNS.items())
        if pattern.search(text) and not pattern.search(negative)
    )
    return kinds or ("drift",)


def choose_motion(prompt: str, negative_prompt: str, seed: int) -> Motion:
    """The camera path for a prompt: its words pick the motions, the seed their strength."""
    kinds = motion_kinds(prompt, negative_prompt)
    strength = 0.8 + 0.4 * unit_hash(seed, "motion_strength")
    side = 1.0 if unit_hash(seed, "motion_side") < 0.5 else -1.0
    zoom, dx, dy, arc = 1.0, 0.0, 0.0, 0.0
    for kind in kinds:
        if kind == "zoom_in":
            zoom *= 1.0 + 0.3 * strength
        elif kind == "dolly_out":
            zoom /= 1.0 + 0.3 * strength
        elif kind == "pan_left":
            dx -= 0.15 * strength
        elif kind == "pan_right":
            dx += 0.15 * strength
        elif kind == "tilt_up":
            dy -= 0.12 * strength
        elif kind == "tilt_down":
            dy += 0.12 * strength
        elif kind == "orbit":
            arc += side * 0.12 * strength
            dx += side * 0.05 * strength
            zoom *= 1.0 + 0.06 * strength
        else:  # drift
            zoom *= 1.0 + 0.06 * strength
            dx += side * 0.03 * strength
    return Motion(kinds=kinds, zoom_end=round(zoom, 6), dx=round(dx, 6), dy=dy, arc=arc)
