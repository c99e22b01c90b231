"""Demo views that move many bytes: a large file download and a long streamed response.

They show (and bench/run.py measures) what the server does with the body: a FileResponse
goes out through ``wsgi.file_wrapper`` and sendfile(), a stream of small parts as they
are produced.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from django.http import FileResponse, HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.http import require_safe

from cserver.demo.params import bad_params_answered, int_param

MAX_DOWNLOAD_MB = 512
MAX_STREAM_PARTS = 10_000_000


def _download_file(mb: int) -> Path:
    """A file of ``mb`` MiB in the temporary directory, written once per size."""
    path = Path(tempfile.gettempdir()) / f"cserver-demo-download-{mb}mb.bin"
    if not path.exists() or path.stat().st_size != mb << 20:
        block = bytes(range(256)) * 4096  # 1 MiB
        fd, partial = tempfile.mkstemp(dir=path.parent, prefix=path.name)
        with os.fdopen(fd, "wb") as out:
            for _ in range(mb):
                out.write(block)
        os.replace(partial, path)  # atomic: concurrent requests never see half a file
    return path


@require_safe
@bad_params_answered
def download(request: HttpRequest) -> HttpResponse:
    """``?mb=`` MiB (default 50) as a FileResponse attachment."""
    mb = int_param(request, "mb", 50, MAX_DOWNLOAD_MB)
    path = _download_file(mb)
    return FileResponse(path.open("rb"), as_attachment=True, filename=path.name)


@require_safe
@bad_params_answered
def stream(request: HttpRequest) -> HttpResponse:
    """``?parts=`` small parts (default 100,000), each yielded on its own."""
    parts = int_param(request, "parts", 100_000, MAX_STREAM_PARTS)

    def lines() -> Iterator[bytes]:
        for n in range(parts):
            yield b"part %d\n" % n

    return StreamingHttpResponse(lines(), content_type="text/plain")
