"""A client process whose multipart upload stalls: ``python stalled_multipart.py URL KEY LOCAL_DIR
FOLDER SENT THRESHOLD PART_UNIT``.

Uploads the Artifact ``LOCAL_DIR`` with ``transfer.MULTIPART_THRESHOLD``/``PART_UNIT`` lowered.
Only ``SENT`` parts reach the server; the last of them never returns to the client (so its eTag is
never recorded), the others after them never leave. The test kills this process with SIGKILL.
"""

from __future__ import annotations

import sys
import threading

from t9k_em_core import client as em_client
from t9k_em_core import transfer


def main(url: str, key: str, local_dir: str, folder: str, sent: int, threshold: int,
         unit: int) -> None:
    transfer.MULTIPART_THRESHOLD, transfer.PART_UNIT = threshold, unit
    em_client.login(url, key)
    real = em_client.AISClient.upload_part
    lock, calls, never = threading.Lock(), [0], threading.Event()

    def upload_part(self: em_client.AISClient, *args: object) -> str:
        with lock:
            calls[0] += 1
            call = calls[0]
        if call > sent:
            never.wait()
        etag = real(self, *args)
        if call == sent:
            never.wait()
        return etag

    em_client.AISClient.upload_part = upload_part  # type: ignore[method-assign]
    transfer.upload_artifact(local_dir, folder, make_folder=True, progress=False)


if __name__ == '__main__':
    main(*sys.argv[1:5], *map(int, sys.argv[5:8]))
