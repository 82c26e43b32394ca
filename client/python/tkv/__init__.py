"""tkv: a pure-Python client for tkvd, the time-versioned key-value server.

    import tkv
    with tkv.Client("127.0.0.1", 7379) as c:
        c.put("price", "9.99", ts=1000)
        c.get("price", ts=1500)        # Version(value=b'9.99', ts=1000, ...)

``Client`` blocks, ``AsyncClient`` is its asyncio twin, and both have
``pipeline()``. PROTOCOL.md in the tkv repository specifies the wire format
this implements.
"""

from .aio import AsyncClient, AsyncPipeline
from .backup import InvalidBackupError
from .client import DEFAULT_PORT, Client, Pipeline
from .pool import Pool
from .errors import (AskError, TryAgainError,
                     AuthError, AuthFailedError, AuthRequiredError, BadRequestError,
                     BusyError, ConnectionError, CrossSlotError, InternalError, MovedError, ReadOnlyError,
                     OutOfRangeError, ProtocolError, RequestError, ServerError, ServerStateError,
                     StorageError, TimeoutError, TkvError, TooLargeError,
                     UnknownCommandError)
from .types import (LATEST, Digest, Entry, Miss, MissReason, Policy, Restored, Retention,
                    ScanPage, SlotRange, SlowlogEntry, Status, Version)

__version__ = "0.1.0"

__all__ = [
    "AsyncClient", "AsyncPipeline", "Client", "Pipeline", "Pool", "DEFAULT_PORT", "LATEST",
    "Version", "Miss", "MissReason", "Entry", "ScanPage", "Retention", "Policy", "Digest",
    "Restored", "SlotRange", "SlowlogEntry", "Status",
    "TkvError", "ConnectionError", "TimeoutError", "ProtocolError", "ServerError",
    "RequestError", "BadRequestError", "UnknownCommandError", "TooLargeError",
    "OutOfRangeError", "ServerStateError", "StorageError", "BusyError", "MovedError", "ReadOnlyError",
    "CrossSlotError", "AskError", "TryAgainError", "AuthError",
    "AuthRequiredError", "AuthFailedError", "InternalError", "InvalidBackupError",
]
