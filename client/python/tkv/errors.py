"""The exceptions the client raises.

Every error the server reports is a :class:`ServerError` carrying the
protocol's status code and the server's own message. PROTOCOL.md groups the
statuses in families by their tens digit (1x: the request, 2x: the server's
state, 3x: authentication, 4x: the server itself), and so do the classes
here, so a caller can catch a whole family or one status. Statuses a later
server may add land in their family's class by the same rule (§4: clients
must treat unknown statuses >= 10 as errors).

A :class:`ConnectionError` means the stream is gone or can no longer be
trusted; the client drops the socket and the next command opens a new one.
Server errors leave the connection usable, except TOO_LARGE for a whole
frame, after which the server closes it (the next command reconnects).
"""

import builtins


class TkvError(Exception):
    """The base of every exception raised by this package."""


class ConnectionError(TkvError, builtins.ConnectionError):
    """The connection failed, closed, or broke mid-reply."""


class TimeoutError(ConnectionError, builtins.TimeoutError):
    """No progress within the client's timeout; the connection is dropped,
    because a late reply would otherwise answer the next request."""


class ProtocolError(ConnectionError):
    """The server sent bytes that are not a valid reply (or a frame above
    the client's limit); the connection is dropped."""


class ServerError(TkvError):
    """The server answered with an error status.

    ``status`` is the protocol's code (an int), ``message`` the server's
    text. ``str(err)`` gives both.
    """

    name = "ERROR"

    def __init__(self, status, message):
        super().__init__(status, message)
        self.status = status
        self.message = message

    def __str__(self):
        return f"{self.name} ({self.status}): {self.message}"


class RequestError(ServerError):
    """1x: the request itself was refused; nothing was changed."""


class BadRequestError(RequestError):
    name = "BAD_REQUEST"


class UnknownCommandError(RequestError):
    name = "UNKNOWN_COMMAND"


class TooLargeError(RequestError):
    """A key, value or frame above a limit. Also raised by the client,
    without sending, for a request frame above its ``max_frame``
    (``status`` is then 12 too and the message says it was not sent)."""

    name = "TOO_LARGE"


class OutOfRangeError(RequestError):
    name = "OUT_OF_RANGE"


class ServerStateError(ServerError):
    """2x: the server could not serve the request now."""


class StorageError(ServerStateError):
    """The storage engine failed; a write's outcome is indeterminate
    (PROTOCOL.md §5): retry it, or read to find out."""

    name = "STORAGE"


class BusyError(ServerStateError):
    name = "BUSY"


class ReadOnlyError(ServerStateError):
    """A write sent to a replica; the message names its primary."""

    name = "READONLY"


class MovedError(ServerStateError):
    """A cluster node does not serve the key's slot (PROTOCOL.md §6,
    "Clusters"): ``slot`` and ``addr`` ("host:port") name where it is
    served; nothing was done. ``addr`` is None if the message is not
    "SLOT HOST:PORT"."""

    name = "MOVED"

    def __init__(self, status, message):
        super().__init__(status, message)
        slot, _, addr = message.partition(" ")
        self.slot = int(slot) if slot.isdigit() else None
        self.addr = addr or None


class CrossSlotError(ServerStateError):
    """On a cluster node, one request's keys are in different slots;
    nothing was done. Keys used together need one hash tag ({tag})."""

    name = "CROSSSLOT"


class AskError(ServerStateError):
    """The key's slot is migrating and the key is not on this node (any
    more) (PROTOCOL.md §6, "Moving slots"): send ASKING and then the
    request to ``addr``, once, without changing the map. ``slot`` and
    ``addr`` as in MovedError; nothing was done."""

    name = "ASK"

    def __init__(self, status, message):
        super().__init__(status, message)
        slot, _, addr = message.partition(" ")
        self.slot = int(slot) if slot.isdigit() else None
        self.addr = addr or None


class TryAgainError(ServerStateError):
    """A write to a key being moved to another node, or a request whose
    keys a migration has split; nothing was done: send it again shortly."""

    name = "TRYAGAIN"


class AuthError(ServerError):
    """3x: authentication."""


class AuthRequiredError(AuthError):
    name = "AUTH_REQUIRED"


class AuthFailedError(AuthError):
    name = "AUTH_FAILED"


class InternalError(ServerError):
    """4x: the server failed internally (e.g. out of memory)."""

    name = "INTERNAL"


_BY_STATUS = {
    10: BadRequestError,
    11: UnknownCommandError,
    12: TooLargeError,
    13: OutOfRangeError,
    20: StorageError,
    21: BusyError,
    22: ReadOnlyError,
    23: MovedError,
    24: CrossSlotError,
    25: AskError,
    26: TryAgainError,
    30: AuthRequiredError,
    31: AuthFailedError,
    40: InternalError,
}

_BY_FAMILY = {1: RequestError, 2: ServerStateError, 3: AuthError, 4: InternalError}


def error_for(status, message):
    """The exception for an error reply [status, message]."""
    cls = _BY_STATUS.get(status) or _BY_FAMILY.get(status // 10, ServerError)
    return cls(status, message)
