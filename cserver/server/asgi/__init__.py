"""ASGI mode: the project's ASGI application served by uvicorn, with cserver's limits and log.

server.py runs uvicorn on the listening socket; protocol.py is uvicorn's h11 protocol plus the
connection limit and head timeout; heads.py judges each head by the rules of cserver's own
parser; layer.py is the ASGI middleware (body limit, delay, diagnostics, request log);
response.py frames what the application sends as the other modes do.
"""

from cserver.server.asgi.server import ASGIServer

__all__ = ["ASGIServer"]
