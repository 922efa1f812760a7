"""The transport's sans-I/O core: what both drivers share, with no socket, thread or event loop.

A driver feeds :class:`Session` every message the WebSocket delivers (``receive``), sends
what it queued (``next_outgoing``), and waits on the :class:`Watched` state it exposes: an
asyncio driver wakes a task when a watcher fires, a sync driver receives the next message
itself instead (see ``_async/transport.py`` and ``_sync/transport.py``).
"""

from .calls import PendingCall
from .exits import Exits
from .session import Session
from .streams import InboundStream, OutboundStream
from .watch import Watched

__all__ = ["Session", "PendingCall", "InboundStream", "OutboundStream", "Exits", "Watched"]
