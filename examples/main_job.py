"""The main job: a tracking server on the embedded default, three example trainings, their uploads.

1. starts `em server` (SQLite + a local blob folder under ``--data-dir``) on loopback;
2. creates a user and its API key with `em server add-user`;
3. trains the NumPy, Keras and Lightning examples, each uploading its run to the server;
4. prints where to browse the runs, then keeps serving until Ctrl-C (``--no-serve`` stops at once).

The terminal shows the examples' own training output and the upload summary. The server's output
(uvicorn's access log included) goes to the log file ``$T9K_EM_LOG`` (set by ``scripts/main.sh``;
else ``.logs/main-<date>-<time>.log``), and TensorFlow's oneDNN/absl banners and Python's
deprecation/future warnings are silenced in the examples' environment.

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
# What the examples' processes get unless the caller's environment says otherwise: no TensorFlow
# C++ INFO/WARNING lines (the absl and CPU-feature banners), no oneDNN notice, no deprecation or
# future warnings that the frameworks raise at each other (Lightning on torch's pytree API).
# Their training output is what the job is for.
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0",
             "PYTHONWARNINGS": "ignore::DeprecationWarning,ignore::FutureWarning"}


def em(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """Runs the `em` console script of this interpreter's environment."""
    return subprocess.run([str(Path(sys.executable).with_name("em")), *args], check=True, **kwargs)


def log_path() -> Path:
    """The job's log file: ``$T9K_EM_LOG``, else a new one under ``.logs/`` (its path printed)."""
    if os.environ.get("T9K_EM_LOG"):
        return Path(os.environ["T9K_EM_LOG"])
    path = REPO / ".logs" / time.strftime("main-%Y%m%d-%H%M%S.log")
    path.parent.mkdir(parents=True, exist_ok=True)
    print(f"Full log: {path}", flush=True)
    return path


def fail(message: str, log: Path) -> SystemExit:
    """The job's end after a failure: the message with the end of the log, where the cause is."""
    tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-40:])
    return SystemExit(f"{message}\n---- last 40 lines of {log} ----\n{tail}---- full log: {log} ----")


def wait_until_serving(url: str, server: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    """Polls the server until it answers, failing early if its process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise fail(f"em server exited with code {server.returncode}", log)
        try:
            requests.get(f"{url}/openapi.json", timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.3)
    raise fail(f"em server did not answer at {url} within {timeout:.0f} s", log)


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
    log = log_path()
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    key_file = Path(args.data_dir) / f"{args.user}.key"
    if not key_file.exists():
        out = em("server", "add-user", args.user, "--data-dir", args.data_dir,
                 capture_output=True, text=True).stdout
        key_file.write_text(out.strip().splitlines()[-1] + "\n")
        key_file.chmod(0o600)
    api_key = key_file.read_text().strip()

    print(f"Starting em server on {url} (data in {args.data_dir}; its log goes to the log file)",
          flush=True)
    with open(log, "ab") as server_log:
        server_log.write(f"\n==== em server on {url}\n".encode())
        server_log.flush()
        server = subprocess.Popen([str(Path(sys.executable).with_name("em")), "server", "--host",
                                   "127.0.0.1", "--port", str(args.port), "--data-dir", args.data_dir],
                                  stdout=server_log, stderr=subprocess.STDOUT)
    env = {**QUIET_ENV, **os.environ}
    try:
        wait_until_serving(url, server, log)
        shutil.rmtree(args.workdir, ignore_errors=True)
        Path(args.workdir).mkdir(parents=True)
        for script in EXAMPLES:
            print(f"\n=== {script} ===", flush=True)
            subprocess.run([sys.executable, str(REPO / "examples" / script), "--host", url,
                            "--api-key", api_key], cwd=args.workdir, env=env, check=True)
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
