"""Takes the screenshots in docs/ (docs/screenshot-*.png) of the web UI with demo data.

Starts a throwaway ``em server`` (tests/support/em_server_process.py), uploads a small CIFAR-10 sweep
through the HTTP API (tests/support/ui_seed.py) plus a 60-run learning-rate sweep, and photographs the
folder, run, compare, artifact and lineage pages and the many-runs view (group bands, parallel
coordinates) in headless Chromium.

Usage: .venv/bin/python scripts/ui_screenshots.py [--out docs] [--chromium /usr/bin/chromium]
"""
from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support.browser import chromium  # noqa: E402
from support.em_server_process import ServerProcess  # noqa: E402
from support.ui_seed import Seeder, metric_text  # noqa: E402

STEPS_PER_EPOCH = 390
SWEEP = [  # name, lr, batch size, optimizer, weight decay, status
    ("resnet50-adam-1e-3", 1e-3, 128, "Adam", 5e-4, "Complete"),
    ("resnet50-sgd-1e-1", 1e-1, 128, "SGD", 5e-4, "Complete"),
    ("resnet50-adamw-3e-4", 3e-4, 256, "AdamW", 1e-2, "Complete"),
    ("resnet50-sgd-3e-2", 3e-2, 64, "SGD", 1e-4, "Error"),
    ("resnet50-adamw-1e-3", 1e-3, 256, "AdamW", 5e-2, "Running"),
]


def curves(rng: random.Random, quality: float, epochs: int, t0: float) -> dict[str, str]:
    """train (every 10 steps), val (every epoch) and test metric files of a plausible run."""
    train, val = [], []
    total = epochs * STEPS_PER_EPOCH
    for step in range(10, total + 1, 10):
        p = step / (30 * STEPS_PER_EPOCH)
        loss = 2.3 * math.exp(-4 * p * quality) + 0.08 + rng.gauss(0, 0.05) * (1 - p / 2)
        acc = min(0.999, 0.1 + 0.88 * (1 - math.exp(-4.5 * p * quality)) + rng.gauss(0, 0.012))
        train.append((step, step // STEPS_PER_EPOCH + 1, {"loss": max(loss, 0.02), "accuracy": acc,
                                                          "lr": 0.5 * (1 + math.cos(math.pi * p))}, t0 + step * 0.35))
    for epoch in range(1, epochs + 1):
        p = epoch / 30
        loss = 2.2 * math.exp(-3.5 * p * quality) + 0.25 + 0.1 * p * p + rng.gauss(0, 0.02)
        acc = 0.1 + 0.8 * (1 - math.exp(-4 * p * quality)) * quality ** 0.1 + rng.gauss(0, 0.006)
        val.append((epoch * STEPS_PER_EPOCH, epoch, {"loss": loss, "accuracy": acc}, t0 + epoch * STEPS_PER_EPOCH * 0.35))
    out = {"train": metric_text(train), "val": metric_text(val)}
    if epochs == 30:
        out["test"] = metric_text([(total, 30, {"loss": val[-1][2]["loss"] * 1.02, "accuracy": val[-1][2]["accuracy"] - 0.004},
                                    t0 + total * 0.36)])
    return out


def seed(s: Seeder, user: str) -> dict[str, str]:
    rng = random.Random(7)
    now = time.time()
    folder = f"/{user}/cifar10/resnet50-sweep"
    s.folder(f"/{user}/mnist")
    s.folder(f"/{user}/imagenet")
    data, _ = s.artifact(f"/{user}/cifar10", "cifar10-train", labels=["dataset"], description="CIFAR-10, 50k images",
                         files={"data_batch_1.bin": bytes(30_000), "batches.meta.txt": b"airplane\nautomobile\n"},
                         references={"cifar-10-python.tar.gz": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"})
    ids: dict[str, str] = {"data": data}
    for i, (name, lr, bs, opt, wd, status) in enumerate(SWEEP):
        t0 = now - (len(SWEEP) - i) * 4 * 3600
        epochs = {"Complete": 30, "Error": 11, "Running": 18}[status]
        model = None
        if status == "Complete":
            model, _ = s.artifact(folder, f"{name}-ckpt", labels=["checkpoint"], description=f"Best checkpoint of {name}",
                                  files={"model.pt": rng.randbytes(180_000 + 1000 * i), "config.yaml": f"lr: {lr}\n".encode()},
                                  references={"onnx/model.onnx": f"s3://models/cifar10/{name}/model.onnx"})
        run_id, _ = s.run(
            folder, name, start=t0, end=None if status == "Running" else t0 + epochs * STEPS_PER_EPOCH * 0.36,
            status=status, labels=["resnet50", "cifar10"] + (["baseline"] if i == 0 else []),
            description="ResNet-50 from torchvision, cosine schedule, 30 epochs" if i == 0 else "",
            hparams={"lr": lr, "batch_size": bs, "epochs": 30, "optimizer": {"name": opt, "weight_decay": wd, "betas": [0.9, 0.999]},
                     "model": {"arch": "resnet50", "pretrained": False, "dropout": 0.1}, "augment": {"crop": 32, "flip": True}},
            metrics=curves(rng, [1.0, 0.92, 1.06, 0.7, 1.02][i], epochs, t0),
            stdout="".join(f"Epoch {e}/30 - loss: {2.3 * math.exp(-e / 8):.4f} - accuracy: {1 - 0.9 * math.exp(-e / 6):.4f}\n"
                           for e in range(1, epochs + 1)),
            inputs=[data], outputs=[model] if model else [])
        ids[name] = run_id
        if model:
            ids[f"{name}-ckpt"] = model
    return ids


def seed_sweep(s: Seeder, user: str, runs: int = 60) -> str:
    """A learning-rate sweep of light runs (no log, platform or git) for the many-runs picture."""
    rng = random.Random(11)
    folder = f"/{user}/cifar10/lr-sweep"
    now = time.time()
    for i in range(runs):
        opt = ["Adam", "SGD", "AdamW"][i % 3]
        lr = 10 ** rng.uniform(-4, -1)
        quality = 1.05 - abs(math.log10(lr) + (2.5 if opt == "SGD" else 3.2)) / 3 + rng.gauss(0, 0.03)
        s.run(folder, f"{opt.lower()}-{i:02d}", start=now - (runs - i) * 1800, end=now - (runs - i) * 1800 + 3000,
              labels=["sweep"], hparams={"lr": lr, "optimizer": {"name": opt, "weight_decay": rng.choice([0.0, 1e-4, 5e-4])},
                                         "batch_size": rng.choice([64, 128, 256])},
              metrics=curves(rng, max(0.3, quality), 8, now), extras=False)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    server = ServerProcess(tempfile.mkdtemp(prefix="em-shots-"))
    user, key = server.add_user("alice")
    server.start()
    try:
        ids = seed(Seeder(server.base_url, key), user)
        first, second, third = SWEEP[0][0], SWEEP[1][0], SWEEP[2][0]
        shots = {
            "folder": f"/ui/folders/{user}/cifar10/resnet50-sweep",
            "run": f"/ui/runs/{ids[first]}",
            "compare": f"/ui/compare?runs={ids[first]},{ids[second]},{ids[third]}",
            "artifact": f"/ui/artifacts/{ids[first + '-ckpt']}",
            "lineage": f"/ui/lineage/{ids['data']}",
        }
        sweep = seed_sweep(Seeder(server.base_url, key), user)
        with chromium(args.chromium) as browser:
            page = browser.new_context(base_url=server.base_url, viewport={"width": 1440, "height": 900},
                                       device_scale_factor=1).new_page()
            page.goto("/ui/signin")
            page.screenshot(path=str(args.out / "screenshot-signin.png"))
            page.fill("#apikey", key)
            page.click("#signin")
            page.wait_for_url("**/ui/folders/**")
            for name, url in shots.items():
                page.goto(url)
                page.wait_for_load_state("networkidle")
                page.wait_for_timeout(300)
                out = args.out / f"screenshot-{name}.png"
                page.screenshot(path=str(out), full_page=name in ("run", "compare"))
                print(out)
            # Many runs: grouped by optimizer, with the group bands and parallel coordinates open.
            page.goto(f"/ui/folders{sweep}")
            page.wait_for_selector("#runs tbody tr")
            page.select_option("#group-by", "hparams.optimizer.name")
            page.click("#many-charts > summary")
            page.select_option("#chart-metric", label="val/accuracy")
            page.click("#plots > summary")
            page.select_option("#plot-summary", "val.accuracy.max")
            page.wait_for_selector("#many-chart[data-bands='3']")
            page.wait_for_selector("#parallel[data-lines]")
            page.wait_for_load_state("networkidle")
            out = args.out / "screenshot-many-runs.png"
            page.screenshot(path=str(out), full_page=True)
            print(out)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
