"""The stack under test and the faults done to it.

Every address comes from `Settings()` (the `GRANTS_*` environment), so the suite runs against
whichever stack the environment names: the main one (`./dev test`) or a second one started
with its own `GRANTS_STATE_DIR` and ports. Processes are found through the pid files `./dev`
writes (`<state>/pids/<name>.pid`), and brought back with `./dev restart NAME` or `./dev up`
(which starts only what is missing)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from shared.config import REPO_ROOT, SERVICE_NAMES, Settings

Log = Callable[[str], None]


def stack_settings() -> Settings:
    """Settings of the stack the environment names. `./dev` derives the Kafka and Temporal
    addresses from GRANTS_KAFKA_PORT / GRANTS_TEMPORAL_PORT; so does this, so a second stack
    is reached with the same variables `./dev up` was given."""
    env = os.environ
    overrides: dict[str, str] = {}
    if "GRANTS_KAFKA_BOOTSTRAP" not in env and "GRANTS_KAFKA_PORT" in env:
        overrides["kafka_bootstrap"] = f"127.0.0.1:{env['GRANTS_KAFKA_PORT']}"
    if "GRANTS_TEMPORAL_ADDRESS" not in env and "GRANTS_TEMPORAL_PORT" in env:
        overrides["temporal_address"] = f"127.0.0.1:{env['GRANTS_TEMPORAL_PORT']}"
    return Settings(**overrides)  # type: ignore[arg-type]


class StackError(RuntimeError):
    pass


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state follows the command name in parentheses (which may hold spaces).
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _exists(pid: int) -> bool:
    """True until the process is reaped (a zombie still exists)."""
    return Path(f"/proc/{pid}").exists()


class Stack:
    """The processes `./dev up` started, and how to bring them back."""

    def __init__(self, settings: Settings, log: Log) -> None:
        self.settings = settings
        self.state = settings.state_dir
        self.log = log
        self.dev_log = self.state / "logs" / "faults-dev.log"

    # ------------------------------------------------------------------ processes

    def pid(self, name: str) -> int | None:
        try:
            return int((self.state / "pids" / f"{name}.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def running(self, name: str) -> bool:
        pid = self.pid(name)
        return pid is not None and _alive(pid)

    async def signal(self, name: str, sig: signal.Signals, wait_exit: float = 60) -> None:
        """Send `sig` to the process and wait until it is gone (SIGKILL after `wait_exit`)."""
        pid = self.pid(name)
        if pid is None or not _alive(pid):
            raise StackError(f"{name} is not running (no live pid in {self.state / 'pids'})")
        os.kill(pid, sig)
        deadline = time.monotonic() + wait_exit
        while _alive(pid):
            if time.monotonic() > deadline:
                self.log(f"{name} (pid {pid}) still alive {wait_exit:.0f}s after {sig.name}: KILL")
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 30
            await asyncio.sleep(0.1)
        # Dead; until init reaps it, `kill -0` still answers for the zombie and ./dev would
        # take it for running (and not start a new one). Wait for the reaping, a few seconds.
        for _ in range(300):
            if not _exists(pid):
                break
            await asyncio.sleep(0.1)
        else:
            self.log(f"{name} (pid {pid}) is a zombie nobody reaps; removing its pid file")
            (self.state / "pids" / f"{name}.pid").unlink(missing_ok=True)

    def _dev_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["GRANTS_STATE_DIR"] = str(self.state)
        # A restarted service keeps the funding configuration the stack runs with (deadlines
        # of seconds under ./dev test), whatever this process was given: the stack is left
        # as it was found.
        recorded = self.state / "funding-config"
        if recorded.is_file() and recorded.read_text().strip():
            env["GRANTS_FUNDING_CONFIG"] = recorded.read_text().strip()
        return env

    async def dev(self, *args: str, timeout: float = 420) -> None:
        """Run `./dev ARGS` (output appended to <state>/logs/faults-dev.log)."""
        self.dev_log.parent.mkdir(parents=True, exist_ok=True)
        with self.dev_log.open("ab") as out:
            out.write(f"\n==== ./dev {' '.join(args)} at {time.ctime()}\n".encode())
            out.flush()
            proc = await asyncio.create_subprocess_exec(
                str(REPO_ROOT / "dev"),
                *args,
                cwd=REPO_ROOT,
                env=self._dev_env(),
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
            )
            try:
                code = await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                code = -1
        if code != 0:
            tail = self.dev_log.read_text(errors="replace").splitlines()[-25:]
            raise StackError(f"./dev {' '.join(args)} failed ({code}):\n" + "\n".join(tail))

    async def as_root(self, *cmd: str, timeout: float = 120) -> None:
        argv = list(cmd) if os.geteuid() == 0 else ["sudo", "-n", *cmd]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await asyncio.wait_for(proc.communicate(), timeout)
        if proc.returncode != 0:
            raise StackError(f"{' '.join(argv)} failed: {output.decode(errors='replace')}")

    # ------------------------------------------------------------------ health

    async def health(self) -> dict[str, bool]:
        async with httpx.AsyncClient(timeout=5) as client:

            async def one(name: str) -> bool:
                try:
                    url = f"http://127.0.0.1:{self.settings.http_port(name)}/health"
                    return (await client.get(url)).status_code == 200
                except httpx.HTTPError:
                    return False

            results = await asyncio.gather(*(one(n) for n in SERVICE_NAMES))
        return dict(zip(SERVICE_NAMES, results, strict=True))

    async def wait_healthy(self, timeout: float = 240) -> float:
        """Wait until every service's /health is green; returns the seconds it took."""
        started = time.monotonic()
        while True:
            health = await self.health()
            if all(health.values()):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                sick = ", ".join(n for n, ok in health.items() if not ok)
                raise StackError(f"services not healthy after {timeout:.0f}s: {sick}")
            await asyncio.sleep(0.5)

    # ------------------------------------------------------------------ Postgres

    def postgres_cluster(self) -> tuple[str, str] | None:
        """The Debian cluster (version, name) `./dev up` started for this stack, or None when
        Postgres is not ours to stop (GRANTS_PG_ADMIN_DSN)."""
        if os.environ.get("GRANTS_PG_ADMIN_DSN"):
            return None
        recorded = self.state / "postgres-started-by-dev"
        if recorded.is_file():
            parts = recorded.read_text().split()
            if len(parts) == 2:
                return parts[0], parts[1]
        if shutil.which("pg_lsclusters") is None:
            return None
        # Like ./dev: the cluster listening on our port.
        import subprocess

        listing = subprocess.run(
            ["pg_lsclusters", "-h"], capture_output=True, text=True, check=False
        ).stdout
        for line in listing.splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2] == str(self.settings.pg_port):
                return fields[0], fields[1]
        return None


# ---------------------------------------------------------------------- faults


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    # Does the fault and the recovery; returns when every service is healthy again.
    run: Callable[[Stack], Awaitable[None]]
    # Why it cannot run on this stack, or None.
    unavailable: Callable[[Stack], str | None] = lambda stack: None


def _kill_service(service: str) -> Fault:
    async def run(stack: Stack) -> None:
        await stack.signal(service, signal.SIGKILL)
        await stack.dev("restart", service)
        await stack.wait_healthy()

    return Fault(f"kill9-{service}", f"kill -9 {service}, then ./dev restart {service}", run=run)


def _kafka(sig: signal.Signals) -> Fault:
    async def run(stack: Stack) -> None:
        # A graceful stop moves leadership and flushes; it may take a while on 2 cores.
        await stack.signal("kafka", sig, wait_exit=120)
        await stack.dev("up")
        await stack.wait_healthy()

    how = "graceful stop (SIGTERM)" if sig == signal.SIGTERM else "kill -9"
    name = "kafka-term" if sig == signal.SIGTERM else "kafka-kill9"
    return Fault(name, f"Kafka {how}, then ./dev up", run=run)


POSTGRES_OUTAGE_SECONDS = 5.0


def _postgres_unavailable(stack: Stack) -> str | None:
    if stack.postgres_cluster() is None:
        return "Postgres is not a local cluster started by ./dev"
    if os.geteuid() != 0:
        import subprocess

        asked = subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False)
        if shutil.which("sudo") is None or asked.returncode != 0:
            return "stopping the Postgres cluster needs root (or sudo without a password)"
    return None


async def _postgres_immediate(stack: Stack) -> None:
    cluster = stack.postgres_cluster()
    assert cluster is not None
    # Immediate: no checkpoint, every connection cut; recovery replays the WAL at start.
    await stack.as_root("pg_ctlcluster", *cluster, "stop", "-m", "immediate")
    await asyncio.sleep(POSTGRES_OUTAGE_SECONDS)
    await stack.dev("up")
    await stack.wait_healthy()


async def _temporal_kill(stack: Stack) -> None:
    await stack.signal("temporal", signal.SIGKILL)
    await stack.dev("up")
    await stack.wait_healthy()


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        *(_kill_service(s) for s in SERVICE_NAMES),
        _kafka(signal.SIGTERM),
        _kafka(signal.SIGKILL),
        Fault(
            "postgres-immediate",
            f"pg_ctlcluster stop -m immediate, {POSTGRES_OUTAGE_SECONDS:.0f}s down, then start",
            run=_postgres_immediate,
            unavailable=_postgres_unavailable,
        ),
        Fault("temporal-kill9", "kill -9 the Temporal server, then ./dev up", run=_temporal_kill),
    )
}
