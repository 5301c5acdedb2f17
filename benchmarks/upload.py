"""Upload throughput: our transfer layer vs. the 0.6.0b0 way, against a local `em server`.

Scenarios (each uploaded REPEATS times, median reported):
  (a) one 1 GiB file (multipart: 32 parts of 32 MiB);
  (b) 10,000 files of 4 KiB;
  (c) a Run with 1,000,000 metric points (one ~110 MB metric file, multipart).
Sizes can be lowered with --big-mib, --small-files, --points.

"ours" is ``t9k_em_core.transfer`` (one keep-alive session, 8 concurrent requests, streamed
bodies, concurrent multipart parts). "0.6.0b0 way" uploads the same objects one request at a
time with plain ``requests.post``/``requests.put`` (a new connection each), ``?apikey=``, parts in
order, each part read into memory: what the 0.6.0b0 client does (spec server-api §5.10, §5.12).
Both create one node per repeat; each repeat goes to a fresh node with a fresh upload state, so
nothing is skipped as already sent.

Usage: python benchmarks/upload.py [--repeats N] [--only a,b,c] [--workdir DIR] [sizes]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import requests

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from t9k_em_core import client as em_client  # noqa: E402
from t9k_em_core import artifact_files, fileio, metadata_file, naming, transfer  # noqa: E402

MiB = 1 << 20


# --- the server -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_server(data_dir: str) -> tuple[subprocess.Popen, str, str]:
    """Starts `em server` on loopback with a fresh data dir; returns (process, url, api key)."""
    py = sys.executable
    out = subprocess.run([py, '-m', 't9k_em_server', 'add-user', 'bench', '--data-dir', data_dir],
                         check=True, capture_output=True, text=True).stdout
    key = out.strip().splitlines()[-1]
    port = free_port()
    proc = subprocess.Popen([py, '-m', 't9k_em_server', '--host', '127.0.0.1', '--port', str(port),
                             '--data-dir', data_dir, '--log-level', 'warning'],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f'http://127.0.0.1:{port}'
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if requests.get(url + '/healthz', timeout=5).status_code == 200:
                return proc, url, key
        except requests.RequestException:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError('server did not start')


# --- data -----------------------------------------------------------------------------------

def make_artifact(parent: str, name: str, files: dict[str, int]) -> str:
    """An Artifact directory with random files of the given sizes."""
    alt = naming.alternative_name(name)
    root = os.path.join(parent, alt)
    os.makedirs(root)
    fileio.write_yaml(os.path.join(root, metadata_file.METADATA_FILE),
                      metadata_file.new_artifact_metadata(name, [], '', alt))
    for rel, size in files.items():
        full = os.path.join(root, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, 'wb') as f:
            left = size
            while left:
                n = min(left, 16 * MiB)
                f.write(os.urandom(n))
                left -= n
    return root


def make_metric_run(parent: str, points: int) -> str:
    """A Run directory with one metric file of ``points`` entries, written like Run.log does."""
    os.environ['EM_RUN_PARENT_DIR'] = parent
    from t9k_em_core.run import create_run
    run = create_run(name='metrics1m')
    for i in range(points):
        run.log('train', {'loss': 1.0 / (i + 1)}, step=i)
    run.finish()
    return run.local


# --- the two ways of uploading --------------------------------------------------------------

def upload_ours(client: em_client.AISClient, local_dir: str, folder: str) -> None:
    transfer.upload(local_dir, folder, make_folder=True, conflict_strategy='new', client=client,
                    progress=False)


def upload_old_way(url: str, key: str, user: str, local_dir: str, folder: str) -> None:
    """One request at a time, a new connection each, ?apikey= (the 0.6.0b0 client)."""
    meta = metadata_file.read_metadata(local_dir)
    extra = json.dumps({'alternativeName': os.path.basename(local_dir)})
    parent = f'/{user}/{folder}'
    r = requests.post(f'{url}/apis/v1/nodes', params={'apikey': key}, allow_redirects=False,
                      json={'parent': parent, 'name': os.path.basename(local_dir),
                            'labels': [], 'description': '', 'type': meta.get('kind', 'Artifact'),
                            'storageType': 2, 'extra': extra})
    r.raise_for_status()
    node = f'{parent}/{os.path.basename(local_dir)}'
    for rel in artifact_files.walk_files(local_dir):
        full = os.path.join(local_dir, rel)
        obj = f'{node}/{rel}'
        size = os.path.getsize(full)
        if size <= transfer.MULTIPART_THRESHOLD:
            with open(full, 'rb') as f:
                requests.post(f'{url}/apis/v1/objects', params={'path': obj, 'apikey': key},
                              files={'content': (os.path.basename(full), f)},
                              allow_redirects=False).raise_for_status()
            continue
        r = requests.post(f'{url}/apis/v1/objects/multipart', params={'path': obj, 'apikey': key},
                          allow_redirects=False)
        r.raise_for_status()
        upload_id = r.json()['uploadId']
        step = int(math.sqrt(size / MiB)) * MiB
        parts = []
        with open(full, 'rb') as f:
            for n in range(1, math.ceil(size / step) + 1):
                chunk = f.read(step)
                r = requests.put(f'{url}/apis/v1/objects/multipart/{upload_id}',
                                 params={'path': obj, 'partNumber': n, 'apikey': key},
                                 files={'content': ('content', chunk)}, allow_redirects=False)
                r.raise_for_status()
                parts.append({'etag': r.json()['eTag'], 'partNumber': n})
        requests.post(f'{url}/apis/v1/objects/multipart/{upload_id}',
                      params={'path': obj, 'apikey': key}, json={'parts': parts},
                      allow_redirects=False).raise_for_status()


# --- measuring ------------------------------------------------------------------------------

def measure(label: str, local_dir: str, repeats: int, client: em_client.AISClient, url: str,
            key: str, state_root: str) -> dict:
    files = artifact_files.walk_files(local_dir)
    nbytes = sum(os.path.getsize(os.path.join(local_dir, f)) for f in files)
    times: dict[str, list[float]] = {'ours': [], 'old': []}
    for i in range(repeats):
        for way in (('old', 'ours') if i % 2 == 0 else ('ours', 'old')):  # alternate the order
            folder = f'bench-{label}-{way}-{i}-{uuid.uuid4().hex[:6]}'
            os.environ['EM_UPLOAD_STATE_DIR'] = os.path.join(state_root, folder)
            transfer.make_folder(client, f'/{client.user}/{folder}')
            started = time.perf_counter()
            if way == 'ours':
                upload_ours(client, local_dir, folder)
            else:
                upload_old_way(url, key, client.user, local_dir, folder)
            times[way].append(time.perf_counter() - started)
            client.delete_node(f'/{client.user}/{folder}')
    result = {'scenario': label, 'files': len(files), 'bytes': nbytes}
    for way, ts in times.items():
        med = statistics.median(ts)
        result[way] = {'median_s': round(med, 3), 'MB_per_s': round(nbytes / med / 1e6, 1),
                       'files_per_s': round(len(files) / med, 1),
                       'all_s': [round(t, 3) for t in ts]}
    result['speedup'] = round(result['old']['median_s'] / result['ours']['median_s'], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--only', default='a,b,c')
    parser.add_argument('--small-files', type=int, default=10_000, help='file count of (b)')
    parser.add_argument('--big-mib', type=int, default=1024, help='size of the file of (a)')
    parser.add_argument('--points', type=int, default=1_000_000, help='metric points of (c)')
    parser.add_argument('--workdir', default=None)
    args = parser.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix='em-bench-')
    proc, url, key = start_server(os.path.join(work, 'server'))
    try:
        client = em_client.AISClient(url, key)
        client.user = client.userinfo()
        data = os.path.join(work, 'data')
        scenarios = {
            'a': lambda: make_artifact(data, 'big', {'big.bin': args.big_mib * MiB}),
            'b': lambda: make_artifact(data, 'small', {f'd{i // 1000}/f{i}.bin': 4096
                                                       for i in range(args.small_files)}),
            'c': lambda: make_metric_run(os.path.join(data, 'runs'), args.points),
        }
        names = {'a': f'(a) one {args.big_mib} MiB file',
                 'b': f'(b) {args.small_files:,} files of 4 KiB',
                 'c': f'(c) run with {args.points:,} metric points'}
        results = []
        for key_ in args.only.split(','):
            local_dir = scenarios[key_]()
            res = measure(key_, local_dir, args.repeats, client, url, key,
                          os.path.join(work, 'state'))
            res['scenario'] = names[key_]
            results.append(res)
            print(json.dumps(res), flush=True)
            shutil.rmtree(local_dir)
        print('\n| scenario | files | MB | ours median s (MB/s, files/s) | 0.6.0b0 way median s '
              '(MB/s, files/s) | speedup |')
        print('|---|---|---|---|---|---|')
        for r in results:
            print(f"| {r['scenario']} | {r['files']} | {r['bytes'] / 1e6:.1f} | "
                  f"{r['ours']['median_s']} ({r['ours']['MB_per_s']}, {r['ours']['files_per_s']}) | "
                  f"{r['old']['median_s']} ({r['old']['MB_per_s']}, {r['old']['files_per_s']}) | "
                  f"{r['speedup']}x |")
    finally:
        proc.terminate()
        proc.wait(10)
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
