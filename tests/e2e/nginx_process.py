"""A real nginx, run from deploy/nginx.conf with only ports and file paths changed."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import repo_root

__all__ = ["NGINX", "PREFIX", "NginxProcess", "Tls", "nginx_binary", "render_config"]

PREFIX = "/ops/zapjobs"  # the dashboard's location in deploy/nginx.conf
NGINX = repo_root() / "deploy" / "nginx.conf"


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


@dataclass(frozen=True, slots=True)
class Tls:
    port: int
    certificate: Path
    key: Path


def _uncomment_tls_server(text: str) -> str:
    lines = text.splitlines()
    start = lines.index("    # server {")
    end = next(i for i in range(len(lines) - 1, start, -1) if lines[i] == "    # }")
    for i in range(start, end + 1):
        lines[i] = re.sub(r"^    # ?", "    ", lines[i])
    return "\n".join(lines) + "\n"


def render_config(
    directory: Path,
    *,
    port: int,
    dashboards: Sequence[int],
    application: int,
    tls: Tls | None = None,
) -> str:
    """deploy/nginx.conf for this test: loopback ports, files under `directory`."""
    text = NGINX.read_text("utf-8")
    if tls is not None:
        text = _uncomment_tls_server(text)
        text = text.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{tls.port} ssl http2;")
        text = re.sub(r"ssl_certificate\s+\S+;", f"ssl_certificate {tls.certificate};", text)
        text = re.sub(r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {tls.key};", text)
    upstream = re.compile(r"(upstream zapjobs_sse \{\n)((?:\s+server [^\n]+\n)+)")
    assert upstream.search(text), "deploy/nginx.conf: upstream zapjobs_sse not found"
    servers = "".join(
        f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n" for p in dashboards
    )
    text = upstream.sub(lambda m: m[1] + servers, text, count=1)
    replacements = {
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{application};",
        "listen 80;": f"listen 127.0.0.1:{port};",
        "worker_processes auto;": (
            f"worker_processes 1;\npid {directory}/nginx.pid;\n"
            f"error_log {directory}/error.log info;"
        ),
        "access_log /var/log/nginx/access.log zapjobs;": (
            f"access_log {directory}/access.log zapjobs;\n"
            + "".join(
                f"    {kind}_temp_path {directory}/{kind}_temp;\n"
                for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            )
        ),
    }
    for old, new in replacements.items():
        assert old in text, f"deploy/nginx.conf: {old!r} not found"
        text = text.replace(old, new)
    return text


class NginxProcess:
    """nginx in the foreground (daemon off), as a child of the test."""

    def __init__(self, directory: Path, config: str, port: int) -> None:
        binary = nginx_binary()
        assert binary is not None, "nginx is not installed (apt-get install nginx)"
        self.binary = binary
        self.directory = directory
        self.port = port
        # Worker processes run as `nobody` when nginx starts as root.
        directory.chmod(0o755)
        (directory / "nginx.conf").write_text(config, "utf-8")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def error_log(self) -> str:
        path = self.directory / "error.log"
        return path.read_text("utf-8", "replace") if path.exists() else ""

    def start(self, timeout: float = 10.0) -> NginxProcess:
        self._process = subprocess.Popen(
            [
                self.binary,
                "-p",
                str(self.directory),
                "-e",
                str(self.directory / "error.log"),
                "-c",
                str(self.directory / "nginx.conf"),
                "-g",
                "daemon off;",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                stderr = self._process.stderr.read().decode() if self._process.stderr else ""
                raise AssertionError(f"nginx exited: {stderr}\n{self.error_log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"nginx did not listen: {self.error_log}") from None
                time.sleep(0.05)

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()  # SIGTERM: fast shutdown, streams cut
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        if self._process.stderr is not None:
            self._process.stderr.close()
