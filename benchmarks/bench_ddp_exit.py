"""Benchmark of how two-rank DDP processes end: how many torchrun launches of a minimal DDP job (gloo, 2 CPU ranks,
a few steps of a DDP-wrapped linear model) abort at exit, ending normally against ending through
`kirec_tui.cli.process_end` (flushed streams, `os._exit`, no interpreter finalization), as `kirec run --nproc` does.

The abort is "terminate called without an active exception" (SIGABRT) in a gloo worker thread that is still
alive while the interpreter finalizes. It is a race, so it shows under load: `--hogs K` runs K busy CPU loops
beside the launches (2 hogs on 2 cores as in the test issue; more make it commoner).

    .venv/bin/python benchmarks/bench_ddp_exit.py --launches 20 --hogs 4
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RANK = """
import sys, torch, torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
dist.init_process_group("gloo")
model = DistributedDataParallel(torch.nn.Linear(64, 64))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
for _ in range(20):
    optimizer.zero_grad()
    model(torch.randn(32, 64)).pow(2).mean().backward()
    optimizer.step()
dist.destroy_process_group()
print("rank done", flush=True)
if sys.argv[1] == "process_end":
    from kirec_tui.cli import process_end
    process_end.end_without_finalization()
    process_end.end_now_if_asked(0)
"""


def hog() -> None:
    while True:
        pass


def launch(script: Path, ending: str, port: int) -> tuple[int, bool]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(port),
            str(script),
            ending,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return done.returncode, "terminate called" in done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--launches", type=int, default=20, help="torchrun launches per way of ending")
    parser.add_argument("--hogs", type=int, default=2, help="busy CPU loops beside the launches")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "ddp_exit.json")
    args = parser.parse_args()
    hogs = [multiprocessing.Process(target=hog, daemon=True) for _ in range(args.hogs)]
    for process in hogs:
        process.start()
    results = {}
    try:
        with tempfile.TemporaryDirectory() as work:
            script = Path(work) / "rank.py"
            script.write_text(RANK)
            port = 29400 + os.getpid() % 500
            for ending in ("normal", "process_end"):
                failed = aborted = 0
                started = time.perf_counter()
                for index in range(args.launches):
                    code, terminate = launch(script, ending, port + index % 50)
                    failed += code != 0
                    aborted += terminate
                results[ending] = {
                    "launches": args.launches,
                    "failed": failed,
                    "aborted_at_exit": aborted,
                    "seconds": round(time.perf_counter() - started, 1),
                }
                print(f"{ending:<12} {failed} of {args.launches} launches failed ({aborted} aborted at exit)")
    finally:
        for process in hogs:
            process.terminate()
    load = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"cpus": os.cpu_count(), "hogs": args.hogs, "load_average": load, "results": results}, indent=2)
        + "\n"
    )
    print(f"load average {load[0]:.1f}; written {args.out}")


if __name__ == "__main__":
    main()
