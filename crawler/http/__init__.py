"""crawler.http: our asyncio HTTP/1.1 client with aiohttp's client API.

Everything the client guide names is importable from here (`aiohttp` read as `crawler.http`).
"""

from crawler.http.auth import BasicAuth
from crawler.http.connector import BaseConnector, ConnectionKey, TCPConnector, UnixConnector
from crawler.http.cookies import AbstractCookieJar, CookieJar, DummyCookieJar
from crawler.http.errors import *  # noqa: F403
from crawler.http.errors import __all__ as _errors_all
from crawler.http.formdata import FormData
from crawler.http.payload import Payload
from crawler.http.pool import PoolStats
from crawler.http.resolver import AsyncResolver, DefaultResolver, ThreadedResolver
from crawler.http.response import ClientResponse, HttpVersion
from crawler.http.session import ClientSession
from crawler.http.streams import EofStream, StreamReader
from crawler.http.timeouts import ClientTimeout
from crawler.http.tls import Fingerprint
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
    "Payload",
    "PoolStats",
    "StreamReader",
    "TCPConnector",
    "ThreadedResolver",
    "UnixConnector",
    "WSCloseCode",
    "WSMessage",
    "WSMsgType",
]
