"""Reads driven by wrk (a C load generator: it costs the client almost nothing, so the server saturates).

wrk is the Debian package `wrk`; `ensure_wrk` installs it with apt-get when it is missing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


@dataclass
class WrkResult:
    count: int
    seconds: float
    p50: float  # ms
    p99: float  # ms
    failures: int  # non-2xx/3xx answers plus socket errors
    server_cpu: float = 0.0  # seconds of the server's CPU (all its processes) the run cost

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        return self.server_cpu * 1000 / self.count if self.count else float("nan")


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse(output: str) -> WrkResult:
    """The numbers of one `wrk --latency` run from its text output."""
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    if done is None:
        raise ValueError(f"not wrk output: {output[:300]!r}")
    percentiles = {p: _ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$",
                                                          output, re.MULTILINE)}
    failures = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", output))
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket:
        failures += sum(int(n) for n in socket.groups())
    return WrkResult(int(done.group(1)), _ms(done.group(2), done.group(3)) / 1000,
                     percentiles.get("50", float("nan")), percentiles.get("99", float("nan")), failures)


def rotation_script(paths: list[str]) -> str:
    """A wrk Lua script that requests `paths` in turn (each connection walks the list)."""
    quoted = ", ".join('"' + p.replace("\\", "\\\\").replace('"', '\\"') + '"' for p in paths)
    return (f"local paths = {{{quoted}}}\nlocal i = 0\n"
            "request = function()\n  i = i + 1\n  return wrk.format(nil, paths[(i % #paths) + 1])\nend\n")


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True, stdout=subprocess.DEVNULL)
        found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed and apt-get could not install it")
    return found


def version() -> str:
    out = subprocess.run([ensure_wrk(), "--version"], capture_output=True, text=True)
    return (out.stdout or out.stderr).split("\n")[0].split(" [")[0].strip()


def run(url: str, seconds: int, connections: int = 16, headers: dict[str, str] | None = None,
        paths: list[str] | None = None, workdir: Path | None = None, cpu=None) -> WrkResult:
    """One wrk run (one thread, `connections` keep-alive connections); `cpu` is a callable giving the
    server's CPU seconds so far, read before and after."""
    args = [ensure_wrk(), "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    if paths:
        assert workdir is not None
        script = workdir / "rotate.lua"
        script.write_text(rotation_script(paths))
        args += ["-s", str(script)]
    before = cpu() if cpu else 0.0
    output = subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout
    result = parse(output)
    if cpu:
        result.server_cpu = cpu() - before
    return result
