"""HTTP client of the AIStore API (the server API that t9k 0.6.0b0 speaks), and the login state.

One :class:`AISClient` holds one ``requests.Session`` with keep-alive connections (pool sized for
the transfer concurrency) and urllib3 ``Retry`` mounted on its ``HTTPAdapter``: connection errors
and 5xx replies are retried with exponential backoff for every method, POST and PUT included,
because every request the SDK sends is safe to repeat (object uploads overwrite, node creation
answers a repeat with a name conflict that the caller resolves). Failures become the exceptions
below, each saying what failed and where. The key travels as ``Authorization: Bearer``.

The client knows nothing of run/artifact file formats; :mod:`t9k_em_core.transfer` does.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import threading
import uuid
from typing import Any, Iterator, Mapping, Optional, Sequence, Union

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from t9k_em_core import config as _config

DEFAULT_CONCURRENCY = 8
LIST_PAGE_SIZE = 1000
_SEND_BLOCK = 1 << 20  # bytes per socket write of a request body (urllib3's default is 16 KiB)
BATCH_MD5_HEADER = 'T9K.md5'  # PAX header of a batch member: its MD5 (hex)


class AIStoreError(Exception):
    """Base class of the errors of talking to an AIStore server."""


class HostUnreachableError(AIStoreError, ConnectionError):
    """The server could not be reached (refused, DNS, timeout), after retries."""


class KeyRejectedError(AIStoreError, PermissionError):
    """The server answered but rejected the API key (unknown, revoked, or no permission)."""


class NodeNotFoundError(AIStoreError, LookupError):
    """A node (or the parent Folder of a new node) does not exist. ``missing`` is its path."""

    def __init__(self, message: str, missing: Optional[str] = None) -> None:
        super().__init__(message)
        self.missing = missing


class NameConflictError(AIStoreError):
    """A node with that name already exists in the parent Folder."""


class BatchUnsupportedError(AIStoreError):
    """The server has no batch upload (``POST /apis/v1/objects/batch``, our extension): it is
    0.6.0b0's server or a real AIStore. Send the files one request each instead."""


class AppendConflictError(AIStoreError):
    """An append or truncate found the object other than the client expected (a lost or
    replayed request): ``size`` and ``md5`` are the object as the server holds it."""

    def __init__(self, message: str, size: int, md5: Optional[str]) -> None:
        super().__init__(message)
        self.size = size
        self.md5 = md5


class RequestFailedError(AIStoreError):
    """Any other failed request. ``status`` is the HTTP status, ``body`` the reply text."""

    def __init__(self, message: str, status: int, body: str,
                 headers: Optional[Mapping[str, str]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
        self.headers = headers or {}


def default_retry(attempts: int = 5) -> Retry:
    """The retry policy: connection errors, read errors and 502/503/504/500, any method."""
    return Retry(total=attempts, connect=attempts, read=attempts, status=attempts, other=0,
                 backoff_factor=0.25, backoff_max=8, allowed_methods=None,
                 status_forcelist=(500, 502, 503, 504), raise_on_status=False,
                 raise_on_redirect=False, respect_retry_after_header=True)


class _Adapter(HTTPAdapter):
    """``HTTPAdapter`` whose connections write request bodies in large blocks."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault('blocksize', _SEND_BLOCK)
        super().init_poolmanager(*args, **kwargs)


class FormFileBody(io.RawIOBase):
    """A ``multipart/form-data`` body with one part ``content`` holding a byte range of a file.

    Streams the file instead of loading it, and is seekable so that urllib3 can rewind it for a
    retry. ``length`` bytes from ``offset`` are sent (default: all of it as of opening; later
    appends are not). ``stat`` is the ``os.fstat`` of the opened file.
    """

    def __init__(self, path: str, filename: str, offset: int = 0,
                 length: Optional[int] = None) -> None:
        super().__init__()
        self._file = open(path, 'rb')
        self.stat = os.fstat(self._file.fileno())
        self._offset = offset
        self._length = self.stat.st_size - offset if length is None else length
        boundary = uuid.uuid4().hex
        self.content_type = f'multipart/form-data; boundary={boundary}'
        safe_name = filename.replace('"', '%22').replace('\r', '').replace('\n', '')
        self._head = (f'--{boundary}\r\nContent-Disposition: form-data; name="content"; '
                      f'filename="{safe_name}"\r\n\r\n').encode('utf-8')
        self._tail = f'\r\n--{boundary}--\r\n'.encode('ascii')
        self._pos = 0

    def __len__(self) -> int:
        return len(self._head) + self._length + len(self._tail)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self)}[whence]
        self._pos = max(0, min(len(self), base + pos))
        return self._pos

    def read(self, size: int = -1) -> bytes:
        end = len(self) if size is None or size < 0 else min(len(self), self._pos + size)
        out = []
        head_len, body_end = len(self._head), len(self._head) + self._length
        while self._pos < end:
            if self._pos < head_len:
                chunk = self._head[self._pos:min(end, head_len)]
            elif self._pos < body_end:
                self._file.seek(self._offset + self._pos - head_len)
                chunk = self._file.read(min(end, body_end) - self._pos)
                if not chunk:  # the file shrank: pad so that Content-Length stays true
                    chunk = b'\0' * (min(end, body_end) - self._pos)
            else:
                chunk = self._tail[self._pos - body_end:end - body_end]
            out.append(chunk)
            self._pos += len(chunk)
        return b''.join(out)

    def close(self) -> None:
        self._file.close()
        super().close()


class AISClient:
    """One logged-in connection to an AIStore server: ``host`` (no trailing ``/``) and ``user``.

    Args:
        host: Base URL of the AIStore API, e.g. ``http://127.0.0.1:8080``.
        api_key: The user's API key.
        timeout: Seconds to wait for the server to send data (``None``: wait forever).
        concurrency: How many requests run at once (sizes the connection pool).
        retry: urllib3 retry policy (default :func:`default_retry`).
    """

    def __init__(self, host: str, api_key: str, timeout: Optional[float] = None,
                 concurrency: int = DEFAULT_CONCURRENCY, retry: Optional[Retry] = None) -> None:
        self.host = _config.check_host(host)
        self.api_key = api_key
        self.timeout = timeout
        self.concurrency = concurrency
        self.user: Optional[str] = None
        #: whether the server has the batch upload: None until the first batch is tried
        self.batch_upload: Optional[bool] = None
        self._capabilities: Optional[dict] = None
        self.session = requests.Session()
        self.session.headers['Authorization'] = f'Bearer {api_key}'
        self.set_retry(retry or default_retry())

    def set_retry(self, retry: Retry) -> None:
        """Replaces the retry policy of every later request."""
        adapter = _Adapter(pool_connections=2, pool_maxsize=self.concurrency + 4, max_retries=retry)
        self.session.mount('http://', adapter)
        self.session.mount('https://', adapter)

    def close(self) -> None:
        """Closes the pooled connections."""
        self.session.close()

    # --- plumbing ---------------------------------------------------------------------------

    def _request(self, method: str, path: str, *, stream: bool = False,
                 **kwargs: Any) -> requests.Response:
        url = self.host + path
        try:
            response = self.session.request(method, url, timeout=self.timeout,
                                            allow_redirects=False, stream=stream, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as e:
            raise HostUnreachableError(
                f'Cannot reach AIStore host {self.host} ({method} {path}): {_reason(e)}') from e
        if response.status_code >= 300:
            try:
                self._raise_for(response, method, path)
            finally:
                response.close()
        return response

    def _raise_for(self, response: requests.Response, method: str, path: str) -> None:
        status, text = response.status_code, response.text
        where = f'{method} {self.host}{path}'
        lowered = text.lower()
        if status == 401 or (status == 400 and lowered.startswith(('api key', 'query is needed'))):
            raise KeyRejectedError(f'AIStore host {self.host} rejected the API key '
                                   f'{_config.mask_api_key(self.api_key)} ({status}: '
                                   f'{text.strip() or response.reason}) on {where}')
        if status == 403:
            raise KeyRejectedError(f'AIStore host {self.host} denied the user of API key '
                                   f'{_config.mask_api_key(self.api_key)} access: {where} '
                                   f'({text.strip() or response.reason})')
        if status == 404:
            missing = text[text.rfind('[') + 1:text.rfind(']')] if '[' in text else None
            raise NodeNotFoundError(f'Not found on {where}: {text.strip() or "(empty reply)"}',
                                    missing=missing)
        if status == 400 and 'conflicting node name' in lowered:
            raise NameConflictError(f'{where}: {text.strip()}')
        if 300 <= status < 400:
            raise RequestFailedError(
                f'{where} answered with a redirect ({status} to {response.headers.get("Location")}):'
                ' the host URL is probably not the AIStore API', status, text)
        raise RequestFailedError(f'{where} failed with {status} {response.reason}: {text.strip()}',
                                 status, text, response.headers)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        try:
            return response.json() if response.content else None
        except ValueError:
            return response.text

    # --- identity ---------------------------------------------------------------------------

    def userinfo(self) -> str:
        """Name of the user that owns the key (``preferred_username``)."""
        reply = self._json('GET', '/oauth2/userinfo')
        if not isinstance(reply, dict) or not reply.get('preferred_username'):
            raise RequestFailedError(f'{self.host}/oauth2/userinfo did not name a user: {reply!r}',
                                     200, str(reply))
        return reply['preferred_username']

    # --- nodes ------------------------------------------------------------------------------

    def list_nodes(self, parent: str, type: Optional[str] = None, page: int = 1,
                   size: int = LIST_PAGE_SIZE) -> dict:
        """One page of the children of ``parent``: ``{'data': [...] or None, 'pagination': {...}}``."""
        params: dict[str, Any] = {'parent': parent, 'page': page, 'size': size}
        if type:
            params['type'] = type
        reply = self._json('GET', '/apis/v1/nodes', params=params)
        if not isinstance(reply, dict) or 'data' not in reply or 'pagination' not in reply:
            raise RequestFailedError(f'{self.host}/apis/v1/nodes returned no data/pagination',
                                     200, str(reply))
        return reply

    def search_runs(self, folder: str, filter: str = '', order_by: Sequence[str] = (),
                    page_size: int = 1000, page_token: Optional[str] = None,
                    recursive: bool = True) -> dict:
        """One page of ``GET /apis/v1/search/runs`` (our extension; docs/server.md):
        ``{'runs': [...], 'total': N, 'next_page_token': str or None}``."""
        params: dict[str, Any] = {'folder': folder, 'filter': filter, 'order_by': list(order_by),
                                  'page_size': page_size, 'recursive': str(recursive).lower()}
        if page_token:
            params['page_token'] = page_token
        reply = self._json('GET', '/apis/v1/search/runs', params=params)
        if not isinstance(reply, dict) or 'runs' not in reply:
            raise RequestFailedError(f'{self.host}/apis/v1/search/runs returned no runs', 200, str(reply))
        return reply

    def iter_nodes(self, parent: str, type: Optional[str] = None) -> Iterator[dict]:
        """All children of ``parent`` (every page)."""
        yield from _paged(lambda page: self.list_nodes(parent, type, page=page))

    def create_node(self, parent: str, name: str, type: str, storage_type: int, extra: str,
                    labels: Optional[list] = None, description: str = '') -> str:
        """Creates a node and returns its ID. ``NameConflictError`` / ``NodeNotFoundError``."""
        body = {'parent': parent, 'name': name, 'labels': list(labels or []),
                'description': description or '', 'type': type, 'storageType': storage_type,
                'extra': extra}
        return self._json('POST', '/apis/v1/nodes', json=body)['id']

    def node_info(self, node: str) -> dict:
        """``id``, ``type``, ``extra`` … of a node given by path or ID (``NodeNotFoundError``)."""
        return self._json('GET', '/apis/v1/nodes/info', params={'node': node})

    def delete_node(self, path: str) -> None:
        """Deletes a node and everything under it."""
        self._request('DELETE', '/apis/v1/nodes', json={'node': path}).close()

    # --- lineage ----------------------------------------------------------------------------

    def graph(self, node_id: str) -> tuple[list[str], list[str]]:
        """IDs of the nodes with an edge into / out of ``node_id``."""
        reply = self._json('GET', '/apis/v1/graphs', params={'current': node_id}) or {}
        return ([n['id'] for n in reply.get('in') or []],
                [n['id'] for n in reply.get('out') or []])

    def add_edges(self, edges: list[tuple[str, str]]) -> None:
        """Adds lineage edges ``(from_id, to_id)``."""
        body = {'graphs': [{'from': a, 'to': b} for a, b in edges]}
        self._request('POST', '/apis/v1/graphs', json=body).close()

    # --- objects ----------------------------------------------------------------------------

    def list_objects(self, node_path: str) -> dict[str, int]:
        """Every object under a node: relative path (no leading ``/``) to size in bytes."""
        return {rel: size for rel, (size, _) in self.list_object_digests(node_path).items()}

    def list_object_digests(self, node_path: str) -> dict[str, tuple[int, Optional[str]]]:
        """Every object under a node: relative path to (size in bytes, MD5 hex or None)."""
        def page(n: int) -> dict:
            return self._json('GET', '/apis/v1/objects/ls',
                              params={'path': node_path, 'size': LIST_PAGE_SIZE, 'page': n})
        return {item['path'].lstrip('/'): (int(item.get('size_bytes') or 0), item.get('md5'))
                for item in _paged(page)}

    def capabilities(self) -> dict:
        """Our server's extensions (``GET /apis/v1/capabilities``), asked once; ``{}`` from a
        server without them (0.6.0b0's, a real AIStore)."""
        if self._capabilities is None:
            try:
                reply = self._json('GET', '/apis/v1/capabilities')
            except (NodeNotFoundError, RequestFailedError):
                reply = None
            self._capabilities = reply if isinstance(reply, dict) else {}
        return self._capabilities

    def can_append(self) -> bool:
        """Whether the server has our append/truncate extension."""
        return bool(self.capabilities().get('append'))

    def append_object(self, object_path: str, offset: int, data: bytes) -> dict:
        """Appends ``data`` to an object that holds ``offset`` bytes (0: creates it); returns the
        server's ``{size_bytes, md5, ...}``. :class:`AppendConflictError` when it holds another
        size."""
        return self._conditional('/apis/v1/objects/append',
                                 {'path': object_path, 'offset': offset,
                                  'md5': hashlib.md5(data).hexdigest()},
                                 data=data, headers={'Content-Type': 'application/octet-stream'})

    def truncate_object(self, object_path: str, size: int) -> dict:
        """Cuts an object to its first ``size`` bytes; returns the server's ``{size_bytes, md5,
        ...}``. :class:`AppendConflictError` when it holds fewer."""
        return self._conditional('/apis/v1/objects/truncate', {'path': object_path, 'size': size})

    def _conditional(self, path: str, params: dict, **kwargs: Any) -> dict:
        try:
            return self._json('POST', path, params=params, **kwargs)
        except RequestFailedError as e:
            if e.status != 409:
                raise
            size = e.headers.get('X-EM-Object-Size', '')
            if not size.isdigit():
                raise
            raise AppendConflictError(str(e), int(size), e.headers.get('X-EM-Object-MD5')) from e

    def upload_object(self, object_path: str, local_file: str) -> os.stat_result:
        """Uploads a whole file (up to 100 MiB) to ``object_path``, overwriting.

        Returns the ``os.fstat`` of the file as it was sent (it may change afterwards).
        """
        body = FormFileBody(local_file, os.path.basename(local_file))
        self._send_form('POST', '/apis/v1/objects', {'path': object_path}, body)
        return body.stat

    def upload_batch(self, node_path: str, files: list[tuple[str, str]]) -> list[os.stat_result]:
        """Uploads small files ``(key inside the node, local file)`` to node ``node_path`` in one
        request (our server's extension ``POST /apis/v1/objects/batch``; all or nothing).

        Returns the ``os.fstat`` of each file as it was sent. Raises :class:`BatchUnsupportedError`
        (and remembers it in ``batch_upload``) when the server does not have the endpoint.
        """
        if self.batch_upload is False:
            raise BatchUnsupportedError(f'{self.host} has no batch upload')
        body, stats = _tar_of(files)
        try:
            self._request('POST', '/apis/v1/objects/batch', params={'path': node_path}, data=body,
                          headers={'Content-Type': 'application/x-tar'}).close()
        except (NodeNotFoundError, RequestFailedError) as e:
            no_route = (isinstance(e, NodeNotFoundError) and e.missing is None) or (
                isinstance(e, RequestFailedError) and e.status == 405)
            if not no_route:
                raise
            self.batch_upload = False
            raise BatchUnsupportedError(f'{self.host} has no batch upload: {e}') from e
        self.batch_upload = True
        return stats

    def start_multipart(self, object_path: str) -> str:
        """Starts a multipart upload and returns its upload ID."""
        return self._json('POST', '/apis/v1/objects/multipart',
                          params={'path': object_path})['uploadId']

    def upload_part(self, upload_id: str, object_path: str, number: int, local_file: str,
                    offset: int, length: int) -> str:
        """Uploads part ``number`` (from 1) of a multipart upload and returns its eTag."""
        reply = self._send_form('PUT', f'/apis/v1/objects/multipart/{upload_id}',
                                {'path': object_path, 'partNumber': number},
                                FormFileBody(local_file, 'content', offset, length))
        etag = reply.get('eTag', reply.get('etag')) if isinstance(reply, dict) else None
        if not etag:
            raise RequestFailedError(f'{self.host}: part {number} of {object_path} got no eTag',
                                     200, str(reply))
        return etag

    def complete_multipart(self, upload_id: str, object_path: str, etags: list[str]) -> None:
        """Completes a multipart upload from the eTags of parts 1..N."""
        body = {'parts': [{'etag': tag, 'partNumber': i} for i, tag in enumerate(etags, 1)]}
        self._request('POST', f'/apis/v1/objects/multipart/{upload_id}',
                      params={'path': object_path}, json=body).close()

    def download_object(self, object_path: str, dest: str) -> int:
        """Streams an object into the file ``dest`` (written atomically); returns its size."""
        tmp = f'{dest}.part{os.getpid()}_{threading.get_ident()}'
        size = 0
        try:
            with self._request('GET', '/apis/v1/objects', params={'path': object_path},
                               stream=True) as response, open(tmp, 'wb') as f:
                for chunk in response.iter_content(chunk_size=1 << 20):
                    f.write(chunk)
                    size += len(chunk)
            os.replace(tmp, dest)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return size

    def _send_form(self, method: str, path: str, params: dict, body: FormFileBody) -> Any:
        with body:
            return self._json(method, path, params=params, data=body,
                              headers={'Content-Type': body.content_type})


def _tar_of(files: list[tuple[str, str]]) -> tuple[bytes, list[os.stat_result]]:
    """A PAX tar of the files (each member named by its key, MD5 in a PAX header) and each
    file's ``os.fstat``. A file is sent with the size it had when opened (padded if it shrank)."""
    buffer = io.BytesIO()
    stats = []
    with tarfile.open(fileobj=buffer, mode='w', format=tarfile.PAX_FORMAT) as tar:
        for key, local_file in files:
            with open(local_file, 'rb') as f:
                st = os.fstat(f.fileno())
                data = f.read(st.st_size)
            data += b'\0' * (st.st_size - len(data))
            info = tarfile.TarInfo(key)
            info.size, info.mtime = len(data), int(st.st_mtime)
            info.pax_headers = {BATCH_MD5_HEADER: hashlib.md5(data).hexdigest()}
            tar.addfile(info, io.BytesIO(data))
            stats.append(st)
    return buffer.getvalue(), stats


def _paged(fetch: Any) -> Iterator[dict]:
    """Items of a paginated listing (0.6.0b0 rules: stop on null data or page*size >= total)."""
    page = 1
    while True:
        reply = fetch(page)
        data = reply.get('data')
        if data is None:
            return
        yield from data
        pagination = reply.get('pagination') or {}
        if not data or page * int(pagination.get('size') or len(data)) >= int(
                pagination.get('total') or 0):
            return
        page += 1


def _reason(error: Exception) -> str:
    """The innermost useful text of a requests/urllib3 connection error."""
    text = str(error)
    for marker in ('Caused by ', 'Failed to establish a new connection: '):
        if marker in text:
            text = text.split(marker, 1)[1]
    return text.rstrip(')"\' ').strip() or type(error).__name__


# --- login state ------------------------------------------------------------------------------

_current: Optional[AISClient] = None
_lock = threading.Lock()


def login(ais_host: Optional[str] = None, api_key: Optional[str] = None,
          timeout: Optional[Union[int, float]] = None) -> None:
    """Logs in to an AIStore server.

    Args:
        ais_host: URL of the AIStore server. Defaults to ``t9k.CONFIG['aistore_host']``.
        api_key: API key. Defaults to ``t9k.CONFIG['api_key']``.
        timeout: Seconds to wait for the server to send data before giving up.

    Raises:
        ValueError: no host or key given or configured, a malformed one, or a broken config file.
        HostUnreachableError: the host cannot be reached.
        KeyRejectedError: the host answered and rejected the key.
        RequestFailedError: the host answered but is not an AIStore API.
    """
    global _current
    cfg = _config.CONFIG
    host = ais_host if ais_host is not None else _from_config(cfg, 'aistore_host', 'AIStore host')
    key = api_key if api_key is not None else _from_config(cfg, 'api_key', 'API Key')
    host = _config.check_host(host)
    _config.check_api_key(key)
    client = AISClient(host, key, timeout=timeout, retry=default_retry(attempts=2))
    try:
        user = client.userinfo()
    except NodeNotFoundError as e:
        client.close()
        raise RequestFailedError(f'{host} answered but serves no AIStore API at /oauth2/userinfo '
                                 '(404): check the host URL and its path prefix', 404, str(e)) from e
    except BaseException:
        client.close()
        raise
    client.user = user
    try:
        client.list_nodes(f'/{user}', type='Folder', size=1)
    except BaseException:
        client.close()
        raise
    client.set_retry(default_retry())
    with _lock:
        previous, _current = _current, client
    if previous is not None:
        previous.close()


def logout() -> None:
    """Logs out: the SDK no longer talks to the server until the next :func:`login`."""
    global _current
    with _lock:
        previous, _current = _current, None
    if previous is not None:
        previous.close()


def current() -> AISClient:
    """The logged-in client; ``RuntimeError('Not logged in ...')`` when there is none."""
    client = _current
    if client is None:
        raise RuntimeError('Not logged in: call em.login(ais_host, api_key) first, or set '
                           'aistore_host/api_key in the config file (see docs/remote.md)')
    return client


def is_logged_in() -> bool:
    """Whether :func:`login` succeeded and :func:`logout` was not called since."""
    return _current is not None


def _from_config(cfg: _config.Config, item: str, what: str) -> str:
    value = cfg.get(item)
    if value is not None:
        return value
    if cfg.error:
        raise ValueError(f'{what} not provided, and the config file cannot be used: {cfg.error}')
    where = cfg.path or _config.config_path()
    raise ValueError(f'{what} not provided: pass it to em.login() or set it in the config file '
                     f'{where} (missing file or item)')
