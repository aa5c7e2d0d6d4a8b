"""Make `accelerate launch --cpu --num_processes N` really start N training processes.

accelerate (1.x) runs `--cpu --num_processes N` through its *simple* launcher, which starts one
process unless an MPI hostfile is given; N is not passed on. The documented CPU multi-process path
therefore needs help: the child sees the launcher's marks (ACCELERATE_USE_CPU, MASTER_ADDR and no
WORLD_SIZE), reads N from the launcher's command line and hands the same command to torchrun, the
launcher accelerate itself uses for `--multi_gpu`. Our Accelerator(cpu=True) then joins the N
processes into one gloo job.
"""

from __future__ import annotations

import os
import subprocess
import sys

import psutil


def _requested_processes(launcher_cmdline: list[str]) -> int:
    """N from `accelerate launch ... --num_processes N ...` (also `--num_processes=N`); 1 if absent."""
    for i, arg in enumerate(launcher_cmdline):
        if arg == "--num_processes" and i + 1 < len(launcher_cmdline):
            return int(launcher_cmdline[i + 1])
        if arg.startswith("--num_processes="):
            return int(arg.split("=", 1)[1])
    return 1


def cpu_processes_requested() -> int:
    """How many processes `accelerate launch --cpu` asked for, when it started only this one."""
    env = os.environ
    launched_by_simple_launcher = env.get("ACCELERATE_USE_CPU", "").lower() == "true" and "MASTER_ADDR" in env
    if not launched_by_simple_launcher or "WORLD_SIZE" in env:
        return 1
    try:
        return _requested_processes(psutil.Process().parent().cmdline())
    except (psutil.Error, ValueError):
        return 1


def relaunch_with_torchrun(processes: int) -> int:
    """Run this very command again as `processes` torchrun workers; returns their exit code."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
    port = os.environ.get("MASTER_PORT", "29500")
    cmd += ["--master_addr", os.environ["MASTER_ADDR"], "--master_port", port]
    cmd += ["-m", "llmrec", *sys.argv[1:]]
    return subprocess.call(cmd)
