"""moto's S3 on loopback, optionally behind a WSGI wrapper that watches or holds requests."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Any]

FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    # Through the environment, not client_kwargs: s3fs would send us-east-1 as a
    # bucket LocationConstraint, which S3 (and moto) refuse.
    "AWS_DEFAULT_REGION": "us-east-1",
}
"""The environment an S3 client needs to talk to moto."""


@contextlib.contextmanager
def s3_server(wrap: Callable[[WsgiApp], WsgiApp] | None = None) -> Iterator[dict[str, Any]]:
    """moto's S3 served on a free loopback port until the block ends; yields storage options.

    ``wrap`` receives moto's WSGI app and returns the app to serve in its place
    (a middleware that records or holds requests).  The caller sets :data:`FAKE_AWS`.
    """
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    moto: WsgiApp = DomainDispatcherApplication(create_backend_app)
    app = wrap(moto) if wrap is not None else moto
    server = make_server("127.0.0.1", 0, app, True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {
            "endpoint_url": f"http://127.0.0.1:{server.server_address[1]}",
            "key": "testing",
            "secret": "testing",
        }
    finally:
        server.shutdown()
        thread.join(10)


@contextlib.contextmanager
def s3_bucket(options: dict[str, Any], prefix: str = "pika") -> Iterator[str]:
    """A fresh bucket on the server of ``options``, removed with its files afterwards."""
    import fsspec

    bucket = f"s3://{prefix}-{uuid.uuid4().hex[:10]}"
    fs = fsspec.filesystem("s3", **options, skip_instance_cache=True)
    fs.mkdir(bucket)
    try:
        yield bucket
    finally:
        with contextlib.suppress(Exception):
            fs.rm(bucket, recursive=True)
