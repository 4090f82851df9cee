"""fal's infrastructure errors, and the bare pages a gateway in front of fal sends.

fal documents one flat shape for errors of its platform (as opposed to the
model's own errors): a body ``{"detail": <text>, "error_type": <type>}`` and
the same type in an ``X-Fal-Error-Type`` header.  Every answer of fal's queue
also carries ``x-fal-request-id``, which is how fal's own clients tell fal's
answers from a load balancer's: a bare 502 or 504 page from a gateway has no
fal header at all, and may come after the request was already handed on.

=============================  ======  =========================================
fault name                     status  what it stands for
=============================  ======  =========================================
``bad_request``                400     the request was malformed
``client_disconnected``        499     the caller closed the connection first
``client_cancelled``           499     the caller cancelled the request
``runner_server_error``        500     the runner failed with a server error
``internal_error``             500     fal failed unexpectedly
``runner_incomplete_response`` 502     the runner's answer was cut short
``runner_scheduling_failure``  503     no runner could be allocated
``runner_connection_timeout``  503     connecting to the runner timed out
``runner_disconnected``        503     the runner went away while working
``runner_connection_refused``  503     the runner refused the connection
``runner_connection_error``    503     another connection error with the runner
``request_timeout``            504     the request took longer than allowed
``startup_timeout``            504     the runner did not start in time
``user_timeout``               504     ``request_timeout`` with
                                       ``X-Fal-Request-Timeout-Type: user``: the
                                       caller's own start deadline passed
``rate_limited``               429     too many requests (``Retry-After`` set)
``gateway_502``                502     nginx's bare "Bad Gateway" page
``gateway_504``                504     nginx's bare "Gateway Time-out" page
=============================  ======  =========================================

Example:
    >>> from pika_tasks.emulator._infra import fault_spec
    >>> spec = fault_spec("runner_disconnected")
    >>> spec.status_code, spec.error_type, spec.from_fal
    (503, 'runner_disconnected', True)
    >>> fault_spec("gateway_502").from_fal
    False
"""

from __future__ import annotations

from dataclasses import dataclass, field

REQUEST_ID_HEADER = "x-fal-request-id"
"""The header fal puts on every queue answer, named after the request it concerns."""

ERROR_TYPE_HEADER = "X-Fal-Error-Type"
"""The header that repeats an infrastructure error's ``error_type``."""

TIMEOUT_TYPE_HEADER = "X-Fal-Request-Timeout-Type"
"""Set to ``user`` on a 504 when the caller's own ``X-Fal-Request-Timeout`` expired."""


@dataclass(frozen=True)
class FaultSpec:
    """How one injectable fault answers.

    Attributes:
        name: the fault's name (fal's ``error_type``, or a name of our own).
        status_code: the HTTP status.
        detail: the human-readable ``detail`` (the page title of a gateway page).
        error_type: fal's ``error_type``; ``None`` for a gateway page.
        headers: extra headers beyond ``X-Fal-Error-Type`` and the request id.
    """

    name: str
    status_code: int
    detail: str
    error_type: str | None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def from_fal(self) -> bool:
        """Whether fal's queue itself answers (with its headers), not a gateway in front."""
        return self.error_type is not None


def _fal(status_code: int, error_type: str, detail: str, **headers: str) -> FaultSpec:
    return FaultSpec(error_type, status_code, detail, error_type, dict(headers))


INFRA_ERRORS: dict[str, FaultSpec] = {
    spec.name: spec
    for spec in (
        _fal(400, "bad_request", "The request was malformed."),
        _fal(499, "client_disconnected", "The client closed the connection before the answer."),
        _fal(499, "client_cancelled", "The request was cancelled by the client."),
        _fal(500, "runner_server_error", "The runner failed with an internal server error."),
        _fal(500, "internal_error", "An unexpected internal error occurred."),
        _fal(502, "runner_incomplete_response", "The runner sent an incomplete response."),
        _fal(503, "runner_scheduling_failure", "No runner could be scheduled for the request."),
        _fal(503, "runner_connection_timeout", "The connection to the runner timed out."),
        _fal(503, "runner_disconnected", "The runner disconnected while processing."),
        _fal(503, "runner_connection_refused", "The runner refused the connection."),
        _fal(503, "runner_connection_error", "A connection error occurred with the runner."),
        _fal(504, "request_timeout", "Request timed out."),
        _fal(504, "startup_timeout", "The runner did not start within the allowed time."),
    )
}
"""fal's documented infrastructure error types, by name."""

USER_TIMEOUT = FaultSpec(
    "user_timeout",
    504,
    "The request did not start within its X-Fal-Request-Timeout.",
    "request_timeout",
    {TIMEOUT_TYPE_HEADER: "user"},
)
RATE_LIMITED = FaultSpec(
    "rate_limited", 429, "Too many requests, please slow down and retry.", "rate_limited"
)
GATEWAY_PAGES: dict[str, FaultSpec] = {
    "gateway_502": FaultSpec("gateway_502", 502, "Bad Gateway", None),
    "gateway_504": FaultSpec("gateway_504", 504, "Gateway Time-out", None),
}

FAULTS: dict[str, FaultSpec] = {
    **INFRA_ERRORS,
    USER_TIMEOUT.name: USER_TIMEOUT,
    RATE_LIMITED.name: RATE_LIMITED,
    **GATEWAY_PAGES,
}
"""Every fault that can be injected into an answer, by name."""


def fault_spec(name: str) -> FaultSpec:
    """The fault called ``name``.

    Raises:
        ValueError: no such fault.
    """
    try:
        return FAULTS[name]
    except KeyError:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(sorted(FAULTS))}") from None


def gateway_page(status_code: int, title: str) -> str:
    """The HTML nginx sends for an error of its own (fal's clients look for "nginx")."""
    heading = f"{status_code} {title}"
    return (
        f"<html>\r\n<head><title>{heading}</title></head>\r\n<body>\r\n"
        f"<center><h1>{heading}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )
