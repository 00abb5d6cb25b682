"""The set loss's slot matching: scipy's Hungarian algorithm per sample against the exact
subset dynamic programme that runs on the batch's device (`vae_lab.losses`).

    python benchmarks/bench_matching.py [--device cpu|cuda] [--batch 256] [--repeats 30] [--json]

For K = 8 and 12 slots (pointnet's default and a larger set), prints the best-of-N time of one
matching of a batch (random costs, 30% padding) and of one set-loss forward and backward pass
on pointnet-shaped slot logits with each matcher, interleaved so both meet the same load.
Best-of-N, because on a shared machine the minimum is the figure least moved by other jobs.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from vae_lab import losses


def best_ms(fn, repeats: int, device: torch.device) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    matchers = {"scipy (CPU)": losses._match_slots_on_cpu, "subset DP (device)": losses._match_slots_on_device}
    rows = []
    for slots in (8, 12):
        generator = torch.Generator().manual_seed(slots)
        cost = torch.randn(args.batch, slots, slots, generator=generator).to(device)
        mask = (torch.rand(args.batch, slots, generator=generator) < 0.7).to(device)
        edge = 11
        recon = torch.randn(args.batch, slots, 1 + 3 * edge + 4, generator=generator).to(device).requires_grad_()
        cells = torch.randint(0, edge, (args.batch, slots, 3), generator=generator).float() / (edge - 1)
        onehot = torch.nn.functional.one_hot(torch.randint(0, 4, (args.batch, slots), generator=generator), 4).float()
        points = (torch.cat([cells, onehot], -1) * mask.cpu().unsqueeze(-1)).to(device)

        def loss_step(matcher):
            original = losses._match_slots
            losses._match_slots = lambda c, m: matcher(c, m).to(c.device)
            try:
                losses.set_reconstruction_loss(recon, points, mask).mean().backward()
            finally:
                losses._match_slots = original

        times = {name: [float("inf"), float("inf")] for name in matchers}
        for matcher in matchers.values():  # warm-up (the DP builds its subset tables once)
            matcher(cost, mask)
        for _ in range(2):  # interleaved rounds
            for name, matcher in matchers.items():
                times[name][0] = min(times[name][0], best_ms(lambda: matcher(cost, mask), args.repeats // 2, device))
                times[name][1] = min(times[name][1], best_ms(lambda: loss_step(matcher), args.repeats // 2, device))
        for name, (match_ms, step_ms) in times.items():
            rows.append({"slots": slots, "matcher": name, "matching_ms": match_ms, "set_loss_ms": step_ms})
    if args.json:
        print(json.dumps({"device": str(device), "batch": args.batch, "threads": args.threads, "rows": rows}))
        return
    print(f"batch {args.batch}, {device}, {args.threads} thread(s)\n")
    print("| K | matcher | matching ms | set loss fwd+bwd ms |")
    print("|---:|---|---:|---:|")
    for row in rows:
        print(f"| {row['slots']} | {row['matcher']} | {row['matching_ms']:.2f} | {row['set_loss_ms']:.2f} |")


if __name__ == "__main__":
    main()
