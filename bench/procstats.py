"""Server memory and CPU accounting for the benchmark (Linux /proc, via psutil)."""
from __future__ import annotations

import re
import threading
import time

import psutil

_CLIENT_ADDRESS = re.compile(r"\(\d+\)|\[local\]")


def vm_rss_kib(pid: int) -> int | None:
    """VmRSS of a process in KiB, read from /proc/<pid>/status (None once it has gone)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


class RssSampler:
    """Samples VmRSS of a gunicorn master's workers every `interval` seconds in a thread.

    Keeps the peak of each worker and the peak of their sum (summed at one instant).
    """

    def __init__(self, master_pid: int, interval: float = 0.1):
        self.master = psutil.Process(master_pid)
        self.interval = interval
        self.peak_by_pid: dict[int, int] = {}
        self.peak_sum = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def worker_pids(self) -> list[int]:
        try:
            return [child.pid for child in self.master.children()]
        except psutil.NoSuchProcess:
            return []

    def sample(self) -> None:
        total = 0
        for pid in self.worker_pids():
            rss = vm_rss_kib(pid)
            if rss is None:
                continue
            total += rss
            if rss > self.peak_by_pid.get(pid, 0):
                self.peak_by_pid[pid] = rss
        self.peak_sum = max(self.peak_sum, total)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def start(self) -> "RssSampler":
        self._thread.start()
        return self

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        master_rss = vm_rss_kib(self.master.pid) or 0
        return {
            "peak_sum_mib": round(self.peak_sum / 1024, 1),
            "peak_per_worker_mib": {str(pid): round(kib / 1024, 1) for pid, kib in sorted(self.peak_by_pid.items())},
            "peak_worker_max_mib": round(max(self.peak_by_pid.values(), default=0) / 1024, 1),
            "master_mib": round(master_rss / 1024, 1),
            "samples": self.samples,
        }


def _cpu_seconds(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return 0.0
    # children_* of a living process are the reaped children; workers are live, so user+system.
    return times.user + times.system


class CpuSnapshot:
    """CPU seconds used so far by each group: gunicorn, PostgreSQL (bench backends and
    background), benchmark clients, and the machine in total (busy = not idle/iowait)."""

    def __init__(self, gunicorn_pid: int | None, client_pids: list[int], database: str):
        self.at = time.monotonic()
        self.per_pid: dict[int, tuple[str, float]] = {}
        if gunicorn_pid is not None:
            try:
                master = psutil.Process(gunicorn_pid)
                for process in [master, *master.children()]:
                    self.per_pid[process.pid] = ("web", _cpu_seconds(process))
            except psutil.NoSuchProcess:
                pass
        for pid in client_pids:
            try:
                self.per_pid[pid] = ("clients", _cpu_seconds(psutil.Process(pid)))
            except psutil.NoSuchProcess:
                pass
        for process in psutil.process_iter(["name", "cmdline"]):
            if process.info["name"] != "postgres":
                continue
            cmdline = " ".join(process.info["cmdline"] or []) + " "
            if f" {database} " in cmdline:
                group = "pg_backends"
            elif _CLIENT_ADDRESS.search(cmdline):
                continue  # a backend of another database: it lands under "other"
            else:
                group = "pg_background"  # postmaster, walwriter, checkpointer, autovacuum, ...
            self.per_pid[process.pid] = (group, _cpu_seconds(process))
        times = psutil.cpu_times()
        # guest time is already inside user; steal is time the hypervisor gave to another machine.
        self.total_steal = getattr(times, "steal", 0.0)
        self.total_busy = (sum(times) - times.idle - getattr(times, "iowait", 0.0) - self.total_steal
                           - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0))
        self.total_iowait = getattr(times, "iowait", 0.0)


def cpu_between(before: CpuSnapshot, after: CpuSnapshot) -> dict:
    """CPU seconds per group between two snapshots (processes present in both)."""
    used = {"web": 0.0, "pg_backends": 0.0, "pg_background": 0.0, "clients": 0.0}
    for pid, (group, seconds) in after.per_pid.items():
        start = before.per_pid.get(pid)
        used[group] += seconds - (start[1] if start else 0.0)
    wall = after.at - before.at
    busy = after.total_busy - before.total_busy
    used["other"] = max(0.0, busy - sum(used.values()))
    return {
        "wall_s": round(wall, 2),
        "cores": psutil.cpu_count(),
        "busy_cores": round(busy / wall, 2) if wall else 0.0,
        "iowait_cores": round((after.total_iowait - before.total_iowait) / wall, 2) if wall else 0.0,
        "steal_cores": round((after.total_steal - before.total_steal) / wall, 2) if wall else 0.0,
        "seconds": {group: round(value, 2) for group, value in used.items()},
    }
