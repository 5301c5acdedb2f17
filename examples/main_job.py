"""The main job: a tracking server on the embedded default, three example trainings, their uploads.

1. starts `em server` (SQLite + a local blob folder under ``--data-dir``) on loopback;
2. creates a user and its API key with `em server add-user`;
3. trains the NumPy, Keras and Lightning examples, each uploading its run to the server;
4. prints where to browse the runs, then keeps serving until Ctrl-C (``--no-serve`` stops at once).

Run it through ``bash scripts/main.sh``, which sets up ``.venv/`` first.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = ("numpy_train.py", "keras_digits.py", "lightning_digits.py")


def em(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """Runs the `em` console script of this interpreter's environment."""
    return subprocess.run([str(Path(sys.executable).with_name("em")), *args], check=True, **kwargs)


def wait_until_serving(url: str, server: subprocess.Popen, timeout: float = 60.0) -> None:
    """Polls the server until it answers, failing early if its process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"em server exited with code {server.returncode}")
        try:
            requests.get(f"{url}/openapi.json", timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.3)
    raise SystemExit(f"em server did not answer at {url} within {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--data-dir", default=str(REPO / ".em-server"))
    parser.add_argument("--workdir", default=str(REPO / ".em-main-job"),
                        help="where the examples write their local runs and artifacts")
    parser.add_argument("--user", default="demo")
    parser.add_argument("--no-serve", action="store_true", help="stop the server when the job is done")
    args = parser.parse_args()

    url = f"http://127.0.0.1:{args.port}"
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    key_file = Path(args.data_dir) / f"{args.user}.key"
    if not key_file.exists():
        out = em("server", "add-user", args.user, "--data-dir", args.data_dir,
                 capture_output=True, text=True).stdout
        key_file.write_text(out.strip().splitlines()[-1] + "\n")
        key_file.chmod(0o600)
    api_key = key_file.read_text().strip()

    server = subprocess.Popen([str(Path(sys.executable).with_name("em")), "server", "--host", "127.0.0.1",
                               "--port", str(args.port), "--data-dir", args.data_dir])
    try:
        wait_until_serving(url, server)
        shutil.rmtree(args.workdir, ignore_errors=True)
        Path(args.workdir).mkdir(parents=True)
        for script in EXAMPLES:
            print(f"\n=== {script} ===", flush=True)
            subprocess.run([sys.executable, str(REPO / "examples" / script), "--host", url,
                            "--api-key", api_key], cwd=args.workdir, check=True)
        print(f"\nThree runs uploaded to {url} under /{args.user}/examples/.")
        print(f"Browse them at {url}/ui/ (sign in with the API key {api_key}).")
        if not args.no_serve:
            print("Serving until Ctrl-C.")
            server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
