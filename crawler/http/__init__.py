"""crawler.http: our asyncio HTTP/1.1 client with aiohttp's client API.

Everything the client guide names is importable from here (`aiohttp` read as `crawler.http`).
"""

from typing import TYPE_CHECKING

from crawler.http.auth import BasicAuth
from crawler.http.connector import BaseConnector, ConnectionKey, TCPConnector, UnixConnector
from crawler.http.cookies import AbstractCookieJar, CookieJar, DummyCookieJar
from crawler.http.errors import *  # noqa: F403
from crawler.http.errors import __all__ as _errors_all
from crawler.http.formdata import FormData
from crawler.http.multipart_writer import MultipartWriter
from crawler.http.payload import Payload
from crawler.http.pool import PoolStats
from crawler.http.resolver import AsyncResolver, DefaultResolver, ThreadedResolver
from crawler.http.response import ClientResponse, HttpVersion
from crawler.http.session import ClientSession
from crawler.http.streams import EofStream, StreamReader
from crawler.http.timeouts import ClientTimeout
from crawler.http.tls import Fingerprint

# WebSocket names load `wsproto` on first use: most clients never open one, and the import
# costs each crawl worker tens of milliseconds of start-up.
_WEBSOCKET_NAMES = frozenset(
    {"ClientWebSocketResponse", "ClientWSTimeout", "WSCloseCode", "WSMessage", "WSMsgType"}
)
# Tracing names load `crawler.http.tracing` on first use too: its params classes take ~15 ms to
# build, paid only by programs that trace.
_TRACING_NAMES = frozenset(
    {
        "TraceConfig",
        "TraceConnectionCreateEndParams",
        "TraceConnectionCreateStartParams",
        "TraceConnectionQueuedEndParams",
        "TraceConnectionQueuedStartParams",
        "TraceConnectionReuseconnParams",
        "TraceDnsCacheHitParams",
        "TraceDnsCacheMissParams",
        "TraceDnsResolveHostEndParams",
        "TraceDnsResolveHostStartParams",
        "TraceRequestChunkSentParams",
        "TraceRequestEndParams",
        "TraceRequestExceptionParams",
        "TraceRequestHeadersSentParams",
        "TraceRequestRedirectParams",
        "TraceRequestStartParams",
        "TraceResponseChunkReceivedParams",
    }
)
if TYPE_CHECKING:
    from crawler.http.tracing import (
        TraceConfig,
        TraceConnectionCreateEndParams,
        TraceConnectionCreateStartParams,
        TraceConnectionQueuedEndParams,
        TraceConnectionQueuedStartParams,
        TraceConnectionReuseconnParams,
        TraceDnsCacheHitParams,
        TraceDnsCacheMissParams,
        TraceDnsResolveHostEndParams,
        TraceDnsResolveHostStartParams,
        TraceRequestChunkSentParams,
        TraceRequestEndParams,
        TraceRequestExceptionParams,
        TraceRequestHeadersSentParams,
        TraceRequestRedirectParams,
        TraceRequestStartParams,
        TraceResponseChunkReceivedParams,
    )
    from crawler.http.websocket import (
        ClientWebSocketResponse,
        ClientWSTimeout,
        WSCloseCode,
        WSMessage,
        WSMsgType,
    )

__all__ = [
    *_errors_all,
    "AbstractCookieJar",
    "AsyncResolver",
    "BaseConnector",
    "BasicAuth",
    "ClientResponse",
    "ClientSession",
    "ClientTimeout",
    "ClientWSTimeout",
    "ClientWebSocketResponse",
    "ConnectionKey",
    "CookieJar",
    "DefaultResolver",
    "DummyCookieJar",
    "EofStream",
    "Fingerprint",
    "FormData",
    "HttpVersion",
    "MultipartWriter",
    "Payload",
    "PoolStats",
    "StreamReader",
    "TCPConnector",
    "ThreadedResolver",
    "TraceConfig",
    "TraceConnectionCreateEndParams",
    "TraceConnectionCreateStartParams",
    "TraceConnectionQueuedEndParams",
    "TraceConnectionQueuedStartParams",
    "TraceConnectionReuseconnParams",
    "TraceDnsCacheHitParams",
    "TraceDnsCacheMissParams",
    "TraceDnsResolveHostEndParams",
    "TraceDnsResolveHostStartParams",
    "TraceRequestChunkSentParams",
    "TraceRequestEndParams",
    "TraceRequestExceptionParams",
    "TraceRequestHeadersSentParams",
    "TraceRequestRedirectParams",
    "TraceRequestStartParams",
    "TraceResponseChunkReceivedParams",
    "UnixConnector",
    "WSCloseCode",
    "WSMessage",
    "WSMsgType",
]


def __getattr__(name: str) -> object:
    if name in _WEBSOCKET_NAMES:
        from crawler.http import websocket

        return getattr(websocket, name)
    if name in _TRACING_NAMES:
        from crawler.http import tracing

        return getattr(tracing, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
