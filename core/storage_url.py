"""`EVALSTUDIO_STORAGE_URL` → the options of django-storages' S3 backend. Pure parsing, no Django import, so a bad URL
is explained at start-up (settings turn the ValueError into ImproperlyConfigured).

    s3://[ACCESS_KEY:SECRET_KEY@]BUCKET[/PREFIX][?endpoint_url=URL&region=NAME&addressing_style=path|virtual]

Credentials in the URL are optional: without them boto3 reads AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or an
instance role) itself. Keys with `/` or `+` must be percent-encoded in the URL.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

# Query keys → S3Storage option names.
_QUERY_OPTIONS = {
    "endpoint_url": "endpoint_url",
    "region": "region_name",
    "addressing_style": "addressing_style",
    "signature_version": "signature_version",
}


def s3_storage_options(url: str, *, name: str = "EVALSTUDIO_STORAGE_URL") -> dict[str, Any]:
    """The OPTIONS for `storages.backends.s3.S3Storage` described by `url`; ValueError naming what is wrong."""
    parts = urlsplit(url.strip())
    if parts.scheme != "s3":
        raise ValueError(f"{name} must start with s3:// (S3-compatible object storage), got {url!r}")
    credentials, _, bucket = parts.netloc.rpartition("@")
    if not bucket:
        raise ValueError(f"{name} names no bucket: expected s3://BUCKET[/PREFIX], got {url!r}")
    options: dict[str, Any] = {
        "bucket_name": bucket,
        "location": parts.path.strip("/"),
        # Uploads are private: read through the app and the worker, never by a public URL.
        "default_acl": None,
        "querystring_auth": True,
        # Two uploads never share a name (uuid names), and an overwrite must never silently replace another file.
        "file_overwrite": False,
        # The worker reads an upload through a spooled temporary file: past 5 MB it goes to disk, not memory.
        "max_memory_size": 5_000_000,
    }
    if credentials:
        access_key, colon, secret_key = credentials.partition(":")
        if not colon or not access_key or not secret_key:
            raise ValueError(f"{name}: credentials in the URL must be ACCESS_KEY:SECRET_KEY@ before the bucket")
        options["access_key"] = unquote(access_key)
        options["secret_key"] = unquote(secret_key)
    for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if key not in _QUERY_OPTIONS:
            raise ValueError(f"{name}: unknown option {key!r}; known: {', '.join(sorted(_QUERY_OPTIONS))}")
        if not value:
            raise ValueError(f"{name}: option {key!r} is empty")
        if key == "endpoint_url" and urlsplit(value).scheme not in {"http", "https"}:
            raise ValueError(f"{name}: endpoint_url must be an http(s) URL, got {value!r}")
        if key == "addressing_style" and value not in {"path", "virtual", "auto"}:
            raise ValueError(f"{name}: addressing_style must be path, virtual or auto, got {value!r}")
        options[_QUERY_OPTIONS[key]] = value
    return options


def s3_transfer_config() -> Any:
    """boto3's multipart settings for uploads and downloads, bounded in memory: a transfer holds up to
    `max_in_memory_*_chunks` parts of `multipart_chunksize` at once. With boto3's defaults (10 x 8 MB) one upload of
    a 90 MB file grew a web process by 113 MB; with 4 x 8 MB by 70 MB, and by 77 MB for a 270 MB file: bounded,
    whatever the file's size (bench/upload_storage.py)."""
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_chunksize=8 << 20, max_concurrency=4)
    # Not constructor arguments of boto3's TransferConfig, but attributes of s3transfer's, which it extends.
    config.max_in_memory_upload_chunks = 4
    config.max_in_memory_download_chunks = 4
    return config
