"""Scripted faults: answer a chosen route with a chosen error, a chosen number of times.

Where the fault rates of :class:`~pika_tasks.emulator._config.EmulatorConfig`
sprinkle 503s and 429s at random (under a seed), a rule injects exactly the
fault a test or a demo asks for: "the next status poll of this request gets
``runner_disconnected``", "the next two submits get a bare gateway page".
Rules come from the configuration (``faults``, or ``--fault`` on the command
line) or are added while the server runs (``POST /_emulator/faults``).

A rule on the submit route may say ``queued``: the job is queued first and
only then is the answer replaced, as when a gateway loses the answer of a
request it had already handed on.  The client cannot tell that its job exists.

Example:
    >>> from pika_tasks.emulator._rules import FaultRule, FaultRules
    >>> rule = FaultRule.parse("status=runner_disconnected:2")
    >>> rule.route, rule.fault, rule.times
    ('status', 'runner_disconnected', 2)
    >>> rules = FaultRules([rule])
    >>> [rules.take("status", "abc") is not None for _ in range(3)]
    [True, True, False]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from pika_tasks.emulator._config import ALL_ROUTES
from pika_tasks.emulator._infra import FaultSpec, fault_spec


@dataclass(frozen=True)
class FaultRule:
    """Answer ``route`` with ``fault``, ``times`` times, after letting ``skip`` answers pass.

    Attributes:
        route: a route name (``submit``, ``status``, ``status_stream``,
            ``result``, ``cancel``, ``file``, ``storage_initiate``, ``storage_upload``).
        fault: a name from :data:`~pika_tasks.emulator._infra.FAULTS`.
        times: how many answers it replaces; ``None`` for every one.
        skip: how many matching answers pass untouched first.
        request_id: only requests about this request id (routes that name one).
        queued: submit only: queue the job, then answer with the fault.
    """

    route: str
    fault: str
    times: int | None = 1
    skip: int = 0
    request_id: str | None = None
    queued: bool = False

    def __post_init__(self) -> None:
        if self.route not in ALL_ROUTES:
            known = ", ".join(sorted(ALL_ROUTES))
            raise ValueError(f"unknown route {self.route!r}; known: {known}")
        fault_spec(self.fault)
        if self.times is not None and self.times < 1:
            raise ValueError("times must be at least 1, or None for every answer")
        if self.skip < 0:
            raise ValueError("skip must not be negative")
        if self.queued and self.route != "submit":
            raise ValueError("queued applies to the submit route only")

    @property
    def spec(self) -> FaultSpec:
        """How the fault answers."""
        return fault_spec(self.fault)

    @classmethod
    def parse(cls, text: str) -> FaultRule:
        """A rule from ``ROUTE=FAULT[:N|:all][:queued]``, e.g. ``submit=gateway_502:queued``.

        Raises:
            ValueError: the text is not a valid rule.
        """
        route, sep, rest = text.partition("=")
        if not sep or not rest:
            raise ValueError(f"expected ROUTE=FAULT[:N|:all][:queued], got {text!r}")
        fault, *options = rest.split(":")
        times: int | None = 1
        queued = False
        for option in options:
            if option == "queued":
                queued = True
            elif option == "all":
                times = None
            elif option.isdigit():
                times = int(option)
            else:
                raise ValueError(f"unknown option {option!r} in fault rule {text!r}")
        return cls(route=route.strip(), fault=fault.strip(), times=times, queued=queued)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultRule:
        """A rule from its JSON form (the fields of this class).

        Raises:
            ValueError: unknown fields or invalid values.
        """
        unknown = set(data) - {"route", "fault", "times", "skip", "request_id", "queued"}
        if unknown:
            raise ValueError(f"unknown fault rule fields: {', '.join(sorted(unknown))}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueError(str(exc)) from None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)


@dataclass
class _Armed:
    rule: FaultRule
    skip: int
    left: int | None


class FaultRules:
    """Rules waiting to fire, consulted in the order they were added.

    All methods run on the server's event loop.
    """

    def __init__(self, rules: Iterable[FaultRule] = ()) -> None:
        self._armed: list[_Armed] = []
        for rule in rules:
            self.add(rule)

    def add(self, rule: FaultRule) -> None:
        """Arm ``rule`` behind the ones already waiting."""
        self._armed.append(_Armed(rule, rule.skip, rule.times))

    def clear(self) -> None:
        """Disarm every rule."""
        self._armed.clear()

    def pending(self) -> list[dict[str, Any]]:
        """The rules still armed, each with how many answers it has ``left`` (None: all)."""
        return [{**armed.rule.as_dict(), "left": armed.left} for armed in self._armed]

    def take(self, route: str, request_id: str | None) -> FaultRule | None:
        """The rule that replaces this answer, if any (and count it as used)."""
        for armed in self._armed:
            rule = armed.rule
            if rule.route != route or (
                rule.request_id is not None and rule.request_id != request_id
            ):
                continue
            if armed.skip > 0:
                armed.skip -= 1
                return None
            if armed.left is not None:
                armed.left -= 1
                if armed.left == 0:
                    self._armed.remove(armed)
            return rule
        return None
