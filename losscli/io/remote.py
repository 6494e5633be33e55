"""Remote files: any fsspec URL (``s3://``, ``gs://``, ``az://``, ``https://``, ...), read by ranges.

The readers see a remote file through two seams of :mod:`losscli.io.files`: ``open_binary(url)`` gives a
seekable, buffered binary file (:class:`RemoteFile`: headers, CSV text read a piece at a time, pyarrow, zip,
``torch.load``), and ``pread_into(url, view, offset)`` reads one range into memory the reader owns (the rows of
a ``.npy`` or ``.safetensors`` file a chunk at a time). Both issue ranged requests only: nothing is downloaded
whole unless a reader asks for the whole (an ``.npz`` member, a ``.pt`` file, a Fortran-order ``.npy``).

fsspec (and the store's package: s3fs, gcsfs, adlfs, aiohttp) is imported when a URL is first opened, never for
a local path. Credentials and endpoints come from each store's own configuration (for S3: the AWS environment
variables, ``~/.aws/config`` and ``~/.aws/credentials``, ``AWS_ENDPOINT_URL``; for GCS: gcsfs's, and
``STORAGE_EMULATOR_HOST``; for Azure: adlfs's, ``AZURE_STORAGE_CONNECTION_STRING`` and the other
``AZURE_STORAGE_*`` variables). Options of a call's own (``--storage-option key=value``,
``compute(storage_options=)``) live in that call's :class:`Store`, which its URLs carry (:class:`Url`): nothing
about them is kept for the process, so two calls with different options never see each other's. Every request
is tried :data:`ATTEMPTS` times, waiting :data:`BACKOFF` seconds and then twice as long between tries (once where
the store's package retries by itself: :data:`RETRIED_BY_THE_STORE`); what still fails is one line naming the URL.
"""

from __future__ import annotations

import io
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from ..errors import InputError, OptionError

ATTEMPTS = 3  # tries of each request
BACKOFF = 0.25  # seconds before the second try; doubled before each next one
# schemes whose package retries every request itself, tried once: gcsfs (6 tries, about 30 s of backoff in all) and
# azure-storage-blob under adlfs (4 tries, about 18, 24 and 42 s apart; adlfs passes no retry settings to its
# client, fsspec/adlfs#502, so no storage option shortens them)
_GCSFS, _AZURE = "6 times (gcsfs's own tries)", "4 times (azure-storage-blob's own tries)"
RETRIED_BY_THE_STORE = {"gs": _GCSFS, "gcs": _GCSFS, "az": _AZURE, "abfs": _AZURE, "abfss": _AZURE}
# the loggers of the packages that read URLs (see _quiet_library_logs)
LIBRARY_LOGGERS = ("fsspec", "s3fs", "gcsfs", "adlfs", "azure", "aiobotocore")
RANGE_BYTES = 1 << 23  # rows are fetched in aligned ranges of 8 MiB (one request each), a few kept for the next chunks
RANGES_KEPT = 4  # for all URLs of a call together: two files streamed side by side, and threads a little out of order
BLOCK_BYTES = 1 << 16  # the least a read asks the store for (a header); larger reads are one request each
INSTALL = "pip install 'losscli[remote]'"
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://")
_T = TypeVar("_T")


def is_url(path: str) -> bool:
    """Whether ``path`` is a URL (``scheme://...``) rather than a local path.

    >>> is_url("s3://bucket/p.npy"), is_url("https://host/p.npy"), is_url("C:/data/p.npy"), is_url("p.npy")
    (True, True, False, False)
    """
    return _URL.match(path) is not None


def is_http(url: str) -> bool:
    """Whether ``url`` is HTTP(S), whose ``?`` starts a query (so it is no glob character there)."""
    return url.lower().startswith(("http://", "https://"))


def is_folder(path: str) -> bool:
    """Whether ``path`` is a folder URL, a prefix ending in ``/`` (``s3://bucket/run-7/``): read as shards.

    >>> is_folder("s3://bucket/run-7/"), is_folder("s3://bucket/run-7"), is_folder("https://h/d/?x=1"), is_folder("d/")
    (True, False, True, False)
    """
    if not is_url(path):
        return False
    return (path.partition("?")[0] if is_http(path) else path).endswith("/")


def parse_options(items: Iterable[str]) -> dict[str, Any]:
    """``key=value`` pairs as fsspec's storage options; a value that is JSON (``true``, ``3``, ``{...}``) is that.

    >>> parse_options(["anon=true", "endpoint_url=http://127.0.0.1:9000", "block=4"])
    {'anon': True, 'endpoint_url': 'http://127.0.0.1:9000', 'block': 4}
    """
    if not items:
        return {}
    import json  # only for --storage-option: a run on local files starts without it

    options: dict[str, Any] = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise OptionError(f"expected key=value, but got {item!r}", argument="storage_option")
        try:
            options[key.strip()] = json.loads(value)
        except ValueError:
            options[key.strip()] = value
    return options


def check_options(options: Any, argument: str = "storage_options") -> dict[str, Any]:
    """Storage options given from Python: a mapping of names to values (fsspec's keyword arguments), as a dict.

    >>> check_options({"anon": True}), check_options(None)
    ({'anon': True}, {})
    """
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise OptionError(f"expected a mapping of option names to values, but got {type(options).__name__}",
                          argument=argument)
    for key in options:
        if not isinstance(key, str) or not key:
            raise OptionError(f"expected option names as non-empty strings, but got {key!r}", argument=argument)
    return dict(options)


class Store:
    """The storage options of one call (a loss command, a ``compute()``, a gate run) and what that call has opened
    and read: each URL's filesystem and the last ranges fetched. A call makes its own and hands it down with its
    paths (:meth:`url`), so that neither options nor cached bytes pass from one call to another. A filesystem's
    listings are dropped when a store first uses it: fsspec shares filesystems between calls with the same
    options, and a call sees the store as it is when it runs (the shards written since the last call)."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = dict(options or {})
        self._opened: dict[str, tuple[Any, str]] = {}  # url -> (filesystem, path in it)
        self._refreshed: dict[int, Any] = {}  # id -> the filesystems whose listings this store has dropped
        self._kept: OrderedDict[tuple[str, int], bytes] = OrderedDict()  # (url, range index) -> its bytes, oldest first
        self._fetching: dict[tuple[str, int], threading.Lock] = {}  # ranges being fetched: one request each
        self._lock = threading.Lock()

    def url(self, text: str) -> Url:
        """``text`` as a URL read through this store."""
        return Url(text, self)

    def filesystem(self, url: str) -> tuple[Any, str]:
        """The fsspec filesystem that holds ``url`` and the path in it (made once per URL)."""
        key = str(url)
        with self._lock:
            if key in self._opened:
                return self._opened[key]
        scheme = key.split("://", 1)[0].lower()
        try:
            import fsspec

            _quiet_library_logs()
            fs, path = fsspec.core.url_to_fs(key, **{**_defaults(scheme), **self.options})
        except ImportError as e:
            raise InputError(f"expected the packages that read {scheme}:// URLs, but {e.name or e} is not "
                             f"installed: {INSTALL}") from None
        except (ValueError, TypeError) as e:  # an unknown protocol, an option the filesystem does not take
            raise InputError(f"expected a URL and storage options that fsspec can open, but got {url} "
                             f"({_reason(e)})") from None
        with self._lock:
            if id(fs) not in self._refreshed:
                self._refreshed[id(fs)] = fs
                fs.invalidate_cache()
            self._opened[key] = (fs, path)
        return fs, path

    def range(self, url: str, index: int, what: str) -> bytes:
        """Range ``index`` of the object (shorter at its end): kept, or fetched once however many threads ask."""
        key = (str(url), index)
        with self._lock:
            gate = self._fetching.setdefault(key, threading.Lock())
        with gate:
            with self._lock:
                if key in self._kept:
                    self._kept.move_to_end(key)
                    return self._kept[key]
            try:
                data = _fetch_range(url, index * RANGE_BYTES, what)
            finally:
                with self._lock:
                    self._fetching.pop(key, None)
            with self._lock:
                self._kept[key] = data
                while len(self._kept) > RANGES_KEPT:
                    self._kept.popitem(last=False)
        return data


class Url(str):
    """A URL with the :class:`Store` it is read through. To everything else it is the ``str`` it reads as: the
    readers keep it as their path and hand it back to :mod:`losscli.io.files`, so the call's options travel with
    the path to every read, however late the engine asks for the rows."""

    store: Store

    def __new__(cls, text: str, store: Store) -> Url:
        url = super().__new__(cls, text)
        url.store = store
        return url


_PLAIN = Store()  # a URL given as a plain string (a reader used directly): the store's own configuration only


def store_of(url: str) -> Store:
    """The store ``url`` is read through."""
    return url.store if isinstance(url, Url) else _PLAIN


def _defaults(protocol: str) -> dict[str, Any]:
    """Time limits, so that an unreachable store fails in seconds (each attempt of :func:`attempt`), not minutes;
    for ``gs://`` with ``STORAGE_EMULATOR_HOST`` set, no credentials, as google-cloud-storage's client does."""
    if protocol in ("s3", "s3a"):
        return {"config_kwargs": {"connect_timeout": 10, "read_timeout": 60, "retries": {"max_attempts": 1}}}
    if protocol in ("http", "https"):
        import aiohttp

        return {"client_kwargs": {"timeout": aiohttp.ClientTimeout(sock_connect=10, sock_read=60)}}
    if protocol in ("gs", "gcs") and os.environ.get("STORAGE_EMULATOR_HOST"):
        return {"token": "anon"}
    return {}


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem that holds ``url`` and the path in it, from ``url``'s store."""
    return store_of(url).filesystem(url)


def attempt(url: str, what: str, action: Callable[[], _T]) -> _T:
    """``action()``, tried up to :data:`ATTEMPTS` times (once where the store's package retries by itself); a
    missing object or a denial is not tried again."""
    last: BaseException | None = None
    retried = RETRIED_BY_THE_STORE.get(url.split("://", 1)[0].lower())
    tries = 1 if retried else ATTEMPTS
    for n in range(tries):
        try:
            return action()
        except InputError:
            raise
        except FileNotFoundError as e:
            if _missing(e):
                raise InputError(f"expected {what} at {url}, but there is no such object") from None
            last = e.__cause__
            if n + 1 < tries:
                time.sleep(BACKOFF * 2 ** n)
        except PermissionError as e:
            raise InputError(f"expected {what} at {url}, but access was denied ({_reason(e)})") from None
        except Exception as e:  # network and store errors: OSError, botocore's, aiohttp's, timeouts
            last = e
            if n + 1 < tries:
                time.sleep(BACKOFF * 2 ** n)
    raise InputError(f"expected {what} from {url}, but reading it failed {retried or f'{tries} times'}: "
                     f"{_reason(last)}")


def _quiet_library_logs() -> None:
    """A :class:`logging.NullHandler` on the loggers of the packages that read URLs (what each library is meant to
    add to its own): gcsfs logs every request it gives up on, with a traceback, and without a handler anywhere
    Python's last-resort handler would print it on stderr, beside losscli's one line. A program that configures
    logging still receives every record."""
    import logging

    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(handler, logging.NullHandler) for handler in logger.handlers):
            logger.addHandler(logging.NullHandler())


def _missing(e: FileNotFoundError) -> bool:
    """Whether the store said the object is not there: fsspec's HTTP also raises FileNotFoundError for a server
    it cannot reach, with the connection's error as its cause."""
    cause = e.__cause__
    status = getattr(cause, "status", None) or getattr(cause, "status_code", None)  # aiohttp's, azure-core's
    return cause is None or isinstance(cause, FileNotFoundError) or status in (404, 410)


def _reason(e: BaseException | None) -> str:
    text = " ".join(str(e).split()) if e is not None else ""
    return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__


def size(url: str, what: str) -> int:
    """The object's size in bytes (refusing a folder and an object of unknown size)."""
    fs, path = filesystem(url)
    info = attempt(url, what, lambda: fs.info(path))
    if info.get("type") == "directory":
        raise InputError(f"expected {what}, but {url} is a folder")
    if info.get("size") is None:
        raise InputError(f"expected {what} of known size at {url}, but the store did not say its size")
    return int(info["size"])


def read_into(url: str, view: memoryview, offset: int, what: str = "a file") -> None:
    """Fill ``view`` with the object's bytes from ``offset`` on: one ranged request (tried again on failure)."""
    if not view.nbytes:
        return
    fs, path = filesystem(url)
    data = attempt(url, what, lambda: fs.cat_file(path, start=offset, end=offset + view.nbytes))
    if len(data) != view.nbytes:
        raise InputError(f"expected {view.nbytes} bytes at offset {offset} of {url}, but got {len(data)} (the "
                         "store ignored the range, or the object changed while being read)")
    view[:] = data


def read_rows(url: str, view: memoryview, offset: int, what: str = "a file") -> None:
    """As :func:`read_into`, for the rows the engine reads a chunk at a time: through aligned ranges of
    :data:`RANGE_BYTES` (the last :data:`RANGES_KEPT` kept), so that small chunks cost few requests."""
    if view.nbytes >= RANGE_BYTES:
        return read_into(url, view, offset, what)
    while view.nbytes:
        index, skip = divmod(offset, RANGE_BYTES)
        data = store_of(url).range(url, index, what)
        got = min(len(data) - skip, view.nbytes)
        if got <= 0:
            raise InputError(f"expected {view.nbytes} more bytes at offset {offset} of {url}, but the object ends "
                             "there (it changed while being read)")
        view[:got] = data[skip:skip + got]
        view, offset = view[got:], offset + got


def _fetch_range(url: str, start: int, what: str) -> bytes:
    fs, path = filesystem(url)
    data = attempt(url, what, lambda: fs.cat_file(path, start=start, end=start + RANGE_BYTES))
    if len(data) > RANGE_BYTES:
        raise InputError(f"expected at most {RANGE_BYTES} bytes at offset {start} of {url}, but got {len(data)} (the "
                         "store ignored the range)")
    return data


class _Ranges(io.RawIOBase):
    """An object as a raw seekable file whose every read is one ranged request (:func:`read_into`)."""

    def __init__(self, url: str, what: str) -> None:
        self.url, self.what, self.size, self.position = url, what, size(url, what), 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(base + offset, 0)
        return self.position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = max(min(view.nbytes, self.size - self.position), 0)
        read_into(self.url, view[:count], self.position, self.what)
        self.position += count
        return count


class RemoteFile(io.BufferedReader):
    """A remote object as a buffered binary file (reads of :data:`BLOCK_BYTES` at a time); ``size`` known."""

    def __init__(self, url: str, what: str) -> None:
        raw = _Ranges(url, what)
        super().__init__(raw, BLOCK_BYTES)
        self.url, self.size = url, raw.size


def open_url(url: str, what: str) -> RemoteFile:
    """``url`` opened for reading bytes, refused (one line naming it) when missing, a folder or empty."""
    f = RemoteFile(url, what)
    if f.size == 0:
        raise InputError(f"expected {what}, but the object at {url} is empty (0 bytes)")
    return f


def glob(pattern: str) -> list[Url]:
    """The URLs that a glob URL matches (``s3://bucket/run-7/preds-*.npy``), sorted, read through the pattern's
    store. Over HTTP(S) the glob reads the folder's page (a server's directory listing) for its links."""
    fs, path = filesystem(pattern)
    found = attempt(pattern, "objects matching the pattern", lambda: fs.glob(path))
    store = store_of(pattern)
    return sorted(store.url(fs.unstrip_protocol(name)) for name in found)


def listing(folder: str, what: str = "a folder") -> list[Url]:
    """The URLs of the objects directly in a folder URL (``s3://bucket/run-7/``), sorted, read through its
    store; over HTTP(S), the links of the folder's page (a server's directory listing)."""
    fs, path = filesystem(folder)
    found = attempt(folder, what, lambda: fs.ls(path, detail=True))
    store = store_of(folder)
    names = (entry["name"] for entry in found if entry.get("type") != "directory")
    return sorted(store.url(fs.unstrip_protocol(name)) for name in names if not name.endswith("/"))


def join(base: str, path: str) -> str:
    """``path`` (relative, from a gate file at ``base``'s folder URL) as a URL: ``..`` and ``.`` resolved.

    >>> join("s3://bucket/gates", "../run-7/p.npy"), join("https://host/a", "./p.csv")
    ('s3://bucket/run-7/p.npy', 'https://host/a/p.csv')
    """
    import posixpath

    scheme, rest = base.split("://", 1)
    host, _, folder = rest.partition("/")
    joined = posixpath.normpath(posixpath.join("/" + folder, path)).lstrip("/")
    return f"{scheme}://{host}/{joined}"
