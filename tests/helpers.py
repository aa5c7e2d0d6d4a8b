"""Helpers tests in several stages share (tiny models are in tiny.py, fixtures in conftest.py)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time

import httpx
import pandas as pd

from llmrec.data import Catalog


def catalog(rows) -> Catalog:
    inter = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    inter["row"] = range(1, len(inter) + 1)
    items = pd.DataFrame({"item": sorted(set(inter["item"])), "title": "", "text": ""})
    return Catalog(inter, items, source="test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, run_dir, *options: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "llmrec", "serve", str(run_dir), "--port", str(self.port), *options]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 120
        while time.time() < deadline:
            assert self.proc.poll() is None, self.proc.stdout.read()
            try:
                if httpx.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError("the server did not get ready")

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.communicate(timeout=60)[0]
