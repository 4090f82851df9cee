"""A throwaway self-signed certificate for serving the emulator over https.

fal's official client only speaks https, so the throughput scenario serves
every variant over TLS with a certificate made at run time and trusted
through ``SSL_CERT_FILE``.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> cert, key = self_signed_certificate(Path(tempfile.mkdtemp()))
    >>> cert.read_text().startswith("-----BEGIN CERTIFICATE-----")
    True
"""

from __future__ import annotations

from pathlib import Path

from pika_tasks.emulator._tls import self_signed_certificate

__all__ = ["self_signed_certificate", "trust_bundle"]


def trust_bundle(certificate: Path) -> Path:
    """``certifi``'s CA bundle plus ``certificate``, written beside it as ``trust.pem``.

    Clients are pointed at this bundle (``SSL_CERT_FILE``) rather than at the
    lone certificate so that building a TLS context costs what it costs by
    default: loading a one-certificate file is several times cheaper than
    loading the ~150 roots of the default bundle, which would flatter any
    client that builds many contexts.
    """
    import certifi

    bundle = certificate.with_name("trust.pem")
    bundle.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + certificate.read_bytes())
    return bundle
