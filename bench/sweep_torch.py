"""HISTORY: how the first defaults were chosen (a PyTorch replica on a GPU). Recipes are now chosen with
lenet itself: ``python -m bench.recipes``. Kept so the old figures in bench/results/ can be reproduced.

Scan training recipes for the seed network fast, on a GPU, with a PyTorch replica.

Why: a 2-core CPU trains one Fashion-MNIST recipe in ~8 minutes, too slow to
compare dozens. This replica (same layers, Glorot init, TF-style LRN, the
seed's objective: cross-entropy + l1*sum|w| + wd*sum(w^2)/2 over kernels,
cosine decay per step) ranks recipes by *validation* accuracy (the first
5,000 training images, as lenet holds them out); the test split is never
read. The winner is then confirmed with ``lenet train`` itself on the CPU.

Usage: python bench/sweep_torch.py DATA_DIR/fashion [--epochs 24] [--workers 4]
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np


def load(folder):
    def images(name):
        with gzip.open(f"{folder}/{name}") as f:
            return np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)

    def labels(name):
        with gzip.open(f"{folder}/{name}") as f:
            return np.frombuffer(f.read(), np.uint8, offset=8)

    x, y = images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz")
    return x[5000:], y[5000:], x[:5000], y[:5000]


def run(args):
    folder, recipe, epochs, seed = args
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.manual_seed(seed)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    xtr, ytr, xva, yva = load(folder)
    xtr = torch.tensor(xtr, device=dev).float().div(255).unsqueeze(1)
    ytr = torch.tensor(ytr, device=dev).long()
    xva = torch.tensor(xva, device=dev).float().div(255).unsqueeze(1)
    yva = torch.tensor(yva, device=dev).long()

    def lrn(x, r=5, bias=1.0, alpha=1.0, beta=0.5):
        sq = F.pad(x.pow(2), (0, 0, 0, 0, r, r))
        s = sum(sq[:, i : i + x.shape[1]] for i in range(2 * r + 1))
        return x / (bias + alpha * s).pow(beta)

    class Net(nn.Module):
        def __init__(self, units, p):
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(1, 20, 5), nn.Conv2d(20, 50, 3)
            self.d1, self.d2, self.out = nn.Linear(1250, units), nn.Linear(units, units), nn.Linear(units, 10)
            self.p = p
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)

        def forward(self, x):
            x = lrn(F.max_pool2d(F.relu(self.c1(x)), 2))
            x = lrn(F.max_pool2d(F.relu(self.c2(x)), 2))
            x = F.dropout(x.flatten(1), self.p, self.training)
            x = F.dropout(F.relu(self.d1(x)), self.p, self.training)
            x = F.dropout(F.relu(self.d2(x)), self.p, self.training)
            return self.out(x)

    net = Net(1200, recipe["dropout"]).to(dev)
    kernels = [net.c1.weight, net.c2.weight, net.d1.weight, net.d2.weight, net.out.weight]
    bs = recipe["batch_size"]
    steps = math.ceil(len(xtr) / bs)
    total = steps * epochs
    warm = int(recipe.get("warmup_epochs", 0) * steps)
    opt = torch.optim.Adam(net.parameters(), lr=recipe["lr"], eps=1e-7)
    step = 0
    curve = []
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(len(xtr), device=dev)
        for i in range(steps):
            idx = perm[i * bs : (i + 1) * bs]
            x, y = xtr[idx], ytr[idx]
            aug = recipe["augment"]
            if "flip" in aug:
                m = torch.rand(len(x), device=dev) < 0.5
                x = torch.where(m[:, None, None, None], x.flip(3), x)
            if "shift" in aug:
                pad = F.pad(x, (2, 2, 2, 2))
                dy = torch.randint(0, 5, (len(x),), device=dev)
                dx = torch.randint(0, 5, (len(x),), device=dev)
                rows = (dy[:, None] + torch.arange(28, device=dev)[None])  # (n, 28)
                cols = (dx[:, None] + torch.arange(28, device=dev)[None])
                x = pad[torch.arange(len(x), device=dev)[:, None, None], 0][:, None] if False else pad[
                    torch.arange(len(x), device=dev)[:, None, None], 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)
            if step < warm:
                lr = recipe["lr"] * (step + 1) / warm
            else:
                lr = 0.5 * recipe["lr"] * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))
            for g in opt.param_groups:
                g["lr"] = lr
            logits = net(x)
            loss = F.cross_entropy(logits, y)
            loss = loss + recipe["l1"] * sum(k.abs().sum() for k in kernels) + recipe["wd"] * sum(k.pow(2).sum() for k in kernels) / 2
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        net.eval()
        with torch.no_grad():
            acc = float((net(xva).argmax(1) == yva).float().mean())
        curve.append(round(acc, 4))
    return {"recipe": recipe, "val_curve": curve, "final_val": curve[-1], "best_val": max(curve)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("folder")
    p.add_argument("--epochs", type=int, default=24)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grid", choices=["fashion", "mnist"], default="fashion")
    p.add_argument("--recipes", default=None, help="JSON list of recipes (each may set its own epochs) instead of a grid")
    a = p.parse_args()
    if a.recipes:
        jobs = []
        for r in json.loads(a.recipes):
            r = {"wd": 1e-5, "l1": 1e-6, "dropout": 0.5, "augment": "none", **r}
            jobs.append((r.pop("folder", a.folder), r, r.pop("epochs", a.epochs), a.seed))
        with ProcessPoolExecutor(a.workers) as ex:
            for r in ex.map(run, jobs):
                print(json.dumps(r), flush=True)
        return
    if a.grid == "mnist":
        grid = [{"augment": aug, "lr": lr, "wd": 1e-5, "l1": 1e-6, "dropout": 0.5, "batch_size": 128}
                for aug in ["none", "shift"] for lr in [1e-3, 2e-3]]
        with ProcessPoolExecutor(a.workers) as ex:
            for r in ex.map(run, [(a.folder, g, a.epochs, a.seed) for g in grid]):
                print(json.dumps(r), flush=True)
        return
    grid = []
    for aug, lr, wd, l1, dropout, bs in itertools.product(
        ["none", "flip", "shift", "flip-shift"], [1e-3, 2e-3], [1e-5, 1e-4], [1e-6, 0.0], [0.5], [128]
    ):
        grid.append({"augment": aug, "lr": lr, "wd": wd, "l1": l1, "dropout": dropout, "batch_size": bs})
    grid += [{"augment": aug, "lr": 1e-3, "wd": 1e-5, "l1": 1e-6, "dropout": 0.3, "batch_size": 128} for aug in ["none", "flip", "flip-shift"]]
    grid += [{"augment": aug, "lr": 2e-3, "wd": 1e-5, "l1": 1e-6, "dropout": 0.5, "batch_size": 256} for aug in ["flip", "flip-shift"]]
    t = time.time()
    with ProcessPoolExecutor(a.workers) as ex:
        for r in ex.map(run, [(a.folder, g, a.epochs, a.seed) for g in grid]):
            print(json.dumps(r), flush=True)
    print(f"# {len(grid)} recipes in {time.time() - t:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
