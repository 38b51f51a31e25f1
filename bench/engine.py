"""Training throughput: a regtrain job against hand-written PyTorch and scikit-learn, in one run.

The same MLP (100 -> 256 -> 256 -> 10, dropout 0.2, l1 1e-5 proximal, l2 1e-4, SGD momentum 0.9,
batch 256) on the same 60,000 x 100 synthetic rows (80% train, 20% validation), four ways:

  job          a real regtrain job: job row in a SQLite database, the worker's runner, per-epoch
               metrics, weight statistics and checkpoints written, artifact saved
  handwritten  a hand-written in-memory loop: tensors indexed per batch, the same penalties
  dataloader   the usual loop: TensorDataset + DataLoader(shuffle=True)
  sklearn      MLPClassifier(solver="sgd") with the matching L2 (no L1: it has none)

Each way runs in a fresh process (so peak RSS is its own), the ways are interleaved over repeats
(the machine is noisy), and the median throughput (training rows per second of the epoch loop,
validation included) is compared.

    python -m bench.engine [--epochs 5] [--repeats 3] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROWS, FEATURES, CLASSES = 60_000, 100, 10
HIDDEN = (256, 256)
DROPOUT, L1, L2, LR, MOMENTUM, BATCH = 0.2, 1e-5, 1e-4, 0.05, 0.9, 256
VALIDATION_FRACTION = 0.2
SEED = 0
WAYS = ("job", "handwritten", "dataloader", "sklearn")


def make_data() -> tuple[np.ndarray, np.ndarray]:
    """Ten classes from a random linear teacher with noise: learnable, not trivial."""
    rng = np.random.default_rng(SEED)
    X = rng.standard_normal((ROWS, FEATURES)).astype(np.float32)
    teacher = rng.standard_normal((FEATURES, CLASSES)).astype(np.float32)
    y = (X @ teacher + 2.0 * rng.standard_normal((ROWS, CLASSES)).astype(np.float32)).argmax(axis=1)
    return X, y.astype(np.int64)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_job(epochs: int, device: str) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="regtrain-bench-"))
    os.environ.update(REGTRAIN_HOME=str(home))
    from sqlalchemy import select

    from api.schemas.job import JobCreate
    from core.db import session_scope
    from core.migrate import upgrade
    from core.settings import get_settings
    from models import DEFAULT_TENANT, Job, JobStatus, Tenant
    from worker.datasets import LoadedData
    from worker.runner import run_job as run
    from worker.training import ArrayDataset

    upgrade(get_settings().resolved_database_url)
    import torch  # noqa: F401  (loaded before measuring, as a worker has it loaded before any job)

    rss_before_data = current_rss_mib()
    X, y = make_data()
    data = ArrayDataset(X, y, tuple(f"x{i}" for i in range(FEATURES)))
    del X, y
    spec = JobCreate.model_validate(
        {
            "dataset": "bench:synthetic",
            "model": {"type": "mlp", "hidden_layers": list(HIDDEN), "dropout": DROPOUT},
            "regularization": {"l1": L1, "l2": L2, "l1_method": "proximal"},
            "optimizer": {"type": "sgd", "lr": LR, "momentum": MOMENTUM},
            "training": {
                "epochs": epochs,
                "batch_size": BATCH,
                "validation_fraction": VALIDATION_FRACTION,
                "seed": SEED,
            },
            "device": device,
        }
    ).model_dump(mode="json")
    with session_scope() as session:
        # The tenant the migration makes: every job belongs to one.
        tenant_id = session.scalars(select(Tenant.id).where(Tenant.name == DEFAULT_TENANT)).one()
        job = Job(
            tenant_id=tenant_id,
            spec=spec,
            task="classification",
            device=device,
            queue="bench",
            dataset_ref="bench:synthetic",
            dataset_id="bench:synthetic",
            dataset_name="bench:synthetic",
            dataset_version=1,
            dataset_sha256="0" * 64,
            progress_epochs=epochs,
            status=JobStatus.QUEUED.value,
        )
        session.add(job)
        session.flush()
        job_id = job.id
    started = time.perf_counter()
    run(job_id, load=lambda _id, _sha, _target, _features: LoadedData(data))
    wall = time.perf_counter() - started
    with session_scope() as session:
        row = session.get(Job, job_id)
        assert row is not None and row.status == "succeeded", (row.status, row.error_message) if row else None
        result = row.result or {}
    timing = result["timing"]
    loop_seconds = sum(timing.values())
    n_train = round(ROWS * (1 - VALIDATION_FRACTION))
    return {
        "samples_per_second": epochs * n_train / loop_seconds,
        "loop_seconds": loop_seconds,
        "wall_seconds": wall,
        "reporting_share": timing["reporting_seconds"] / loop_seconds,
        "evaluation_share": timing["evaluation_seconds"] / loop_seconds,
        "val_accuracy": result["validation"]["accuracy"],
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_data_mib": rss_before_data,
    }


def _torch_setup(device: str) -> tuple[Any, ...]:
    import torch
    from torch import nn

    rss_before_data = current_rss_mib()
    X, y = make_data()
    order = np.random.default_rng(SEED).permutation(ROWS)
    n_val = round(ROWS * VALIDATION_FRACTION)
    val, train = order[:n_val], order[n_val:]
    mean, std = X[train].mean(axis=0), X[train].std(axis=0)
    X = (X - mean) / std
    dev = torch.device(device)
    tensors = (
        torch.as_tensor(X[train], device=dev),
        torch.as_tensor(y[train], device=dev),
        torch.as_tensor(X[val], device=dev),
        torch.as_tensor(y[val], device=dev),
    )
    torch.manual_seed(SEED)
    net = nn.Sequential(
        nn.Linear(FEATURES, HIDDEN[0]),
        nn.ReLU(),
        nn.Dropout(DROPOUT),
        nn.Linear(HIDDEN[0], HIDDEN[1]),
        nn.ReLU(),
        nn.Dropout(DROPOUT),
        nn.Linear(HIDDEN[1], CLASSES),
    ).to(dev)
    weights = [p for name, p in net.named_parameters() if name.endswith("weight")]
    others = [p for name, p in net.named_parameters() if not name.endswith("weight")]
    optimizer = torch.optim.SGD([{"params": weights, "weight_decay": L2}, {"params": others}], lr=LR, momentum=MOMENTUM)
    return (*tensors, net, weights, optimizer, rss_before_data)


def _step(net: Any, weights: list[Any], optimizer: Any, xb: Any, yb: Any) -> None:
    import torch
    from torch.nn import functional as F

    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(net(xb), yb).backward()
    optimizer.step()
    with torch.no_grad():
        for w in weights:
            w.copy_(torch.sign(w) * torch.clamp(w.abs() - LR * L1, min=0))


def _validate(net: Any, X_val: Any, y_val: Any) -> float:
    import torch
    from torch.nn import functional as F

    net.eval()
    with torch.no_grad():
        loss = F.cross_entropy(net(X_val), y_val).item()
    net.train()
    return loss


def run_handwritten(epochs: int, device: str) -> dict[str, Any]:
    import torch

    X_train, y_train, X_val, y_val, net, weights, optimizer, rss_before_data = _torch_setup(device)
    n = len(X_train)
    started = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(n, device=X_train.device)
        for start in range(0, n, BATCH):
            rows = order[start : start + BATCH]
            _step(net, weights, optimizer, X_train[rows], y_train[rows])
        _validate(net, X_val, y_val)
    seconds = time.perf_counter() - started
    return {
        "samples_per_second": epochs * n / seconds,
        "loop_seconds": seconds,
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_data_mib": rss_before_data,
    }


def run_dataloader(epochs: int, device: str) -> dict[str, Any]:
    from torch.utils.data import DataLoader, TensorDataset

    X_train, y_train, X_val, y_val, net, weights, optimizer, rss_before_data = _torch_setup("cpu")
    net.to(device)
    loader = DataLoader(TensorDataset(X_train, y_train), batch_size=BATCH, shuffle=True)
    started = time.perf_counter()
    for _ in range(epochs):
        for xb, yb in loader:
            _step(net, weights, optimizer, xb.to(device), yb.to(device))
        _validate(net, X_val.to(device), y_val.to(device))
    seconds = time.perf_counter() - started
    return {
        "samples_per_second": epochs * len(X_train) / seconds,
        "loop_seconds": seconds,
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_data_mib": rss_before_data,
    }


def run_sklearn(epochs: int, _device: str) -> dict[str, Any]:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    X, y = make_data()
    n_val = round(ROWS * VALIDATION_FRACTION)
    order = np.random.default_rng(SEED).permutation(ROWS)
    train = order[n_val:]
    X_train = (X[train] - X[train].mean(axis=0)) / X[train].std(axis=0)
    # scikit-learn's alpha penalizes alpha / (2 n) * ||W||^2 on its mean loss: alpha = l2 * n.
    model = MLPClassifier(
        hidden_layer_sizes=HIDDEN,
        alpha=L2 * len(train),
        solver="sgd",
        learning_rate_init=LR,
        momentum=MOMENTUM,
        nesterovs_momentum=False,
        batch_size=BATCH,
        max_iter=epochs,
        shuffle=True,
        random_state=SEED,
        tol=0.0,
        n_iter_no_change=epochs + 1,
    )
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, y[train])
    seconds = time.perf_counter() - started
    return {
        "samples_per_second": epochs * len(train) / seconds,
        "loop_seconds": seconds,
        "peak_rss_mib": peak_rss_mib(),
    }


RUNNERS = {"job": run_job, "handwritten": run_handwritten, "dataloader": run_dataloader, "sklearn": run_sklearn}


def measure(way: str, epochs: int, device: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.engine", "--only", way, "--epochs", str(epochs), "--device", device],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"{way} failed:\n{completed.stderr[-3000:]}")
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--skip", nargs="*", default=[], choices=WAYS, help="Ways not to run.")
    parser.add_argument("--only", choices=WAYS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        print(json.dumps(RUNNERS[args.only](args.epochs, args.device)))
        return

    ways = [w for w in WAYS if w not in args.skip and not (w == "sklearn" and args.device == "cuda")]
    runs: dict[str, list[dict[str, Any]]] = {w: [] for w in ways}
    for repeat in range(args.repeats):
        for way in ways:
            runs[way].append(measure(way, args.epochs, args.device))
            print(
                f"  repeat {repeat + 1}/{args.repeats} {way:<12} {runs[way][-1]['samples_per_second']:>10,.0f} rows/s",
                file=sys.stderr,
            )

    def median(way: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[way])

    dataset_mib = ROWS * FEATURES * 4 / 2**20
    print(
        f"\nregtrain engine benchmark: {ROWS} x {FEATURES} rows, MLP {FEATURES}-{HIDDEN[0]}-{HIDDEN[1]}-{CLASSES}, "
        f"batch {BATCH}, {args.epochs} epochs, device {args.device}, {args.repeats} interleaved repeats"
    )
    print(f"{'way':<12} {'median rows/s':>14} {'peak RSS MiB':>13}")
    for way in ways:
        print(f"{way:<12} {median(way, 'samples_per_second'):>14,.0f} {median(way, 'peak_rss_mib'):>13.0f}")
    if "job" not in runs:
        return
    print("\nratios within each repeat (the machine's speed drifts between repeats): median [min, max]")
    for baseline, target in (("handwritten", 1.0), ("dataloader", 1.5), ("sklearn", None)):
        if baseline not in runs:
            continue
        ratios = [
            j["samples_per_second"] / b["samples_per_second"] for j, b in zip(runs["job"], runs[baseline], strict=True)
        ]
        goal = f"  target >= {target:.1f}x" if target else "  (no L1, no dropout: a reference, not a target)"
        print(f"job / {baseline:<12} {statistics.median(ratios):5.2f}x [{min(ratios):.2f}, {max(ratios):.2f}]{goal}")
    print(
        f"per-epoch reporting (metrics, statistics, checkpoint, database writes): "
        f"{100 * median('job', 'reporting_share'):.1f}% of epoch time (target <= 5%)"
    )
    print(
        f"per-epoch evaluation (validation split + training-loss sample): "
        f"{100 * median('job', 'evaluation_share'):.1f}% of epoch time"
    )

    def growth(way: str) -> float:
        return median(way, "peak_rss_mib") - median(way, "rss_before_data_mib")

    compare = f"; the hand-written loop grows {growth('handwritten'):.0f} MiB" if "handwritten" in runs else ""
    print(
        f"job worker: peak RSS {median('job', 'peak_rss_mib'):.0f} MiB, growing {growth('job'):.0f} MiB from data "
        f"and training{compare}; the dataset is {dataset_mib:.0f} MiB as float32 "
        f"(validation accuracy {median('job', 'val_accuracy'):.3f})"
    )


if __name__ == "__main__":
    main()
