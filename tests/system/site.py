"""The deploy kit of deploy/ brought up as a team would run it, on test ports and paths:
gunicorn, the Celery worker and beat started from the systemd units' own ExecStart lines,
nginx with TLS from the rendered site file, and panva's oidc-provider under Node. Nothing
here is a copy of those files: they are read and filled in."""

from __future__ import annotations

import os
import re
import secrets
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests import processes
from tests.helpers import ROOT
from tests.services import answers, binary, free_port

DEPLOY = ROOT / "deploy"
OIDC_DIR = ROOT / "tests" / "system" / "oidc"
HOST = "lethe.test"  # Chromium maps it to 127.0.0.1 (--host-resolver-rules)


def render(template: Path, values: dict[str, str]) -> str:
    """What `envsubst '${A} ${B}'` does: fill ${NAME} for the names given; nginx's own
    variables ($host, no braces) are left alone. A placeholder left unfilled is an error."""
    text = template.read_text()
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    left = re.findall(r"\$\{(LETHE_\w+)\}", text)
    assert not left, f"{template.name}: no value for {left}"
    return text


def unit_command(unit: str, replacements: dict[str, str]) -> list[str]:
    """The ExecStart of a deploy/systemd unit, with its paths and ports replaced."""
    line = next(line for line in (DEPLOY / "systemd" / unit).read_text().splitlines()
                if line.startswith("ExecStart="))
    command = line.removeprefix("ExecStart=")
    for old, new in replacements.items():
        command = command.replace(old, new)
    return shlex.split(command)


def wait_until_listening(port: int, what: str, process: subprocess.Popen[bytes],
                         timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not answers("127.0.0.1", port):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start on port {port}")
        time.sleep(0.1)


@dataclass
class Site:
    """One Lethe instance behind nginx, with its own sign-in (OIDC or nginx basic auth)."""

    workdir: Path
    https_port: int
    http_port: int
    env: dict[str, str]
    running: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.https_port}"

    def start(self, args: list[str], log: str, cwd: Path = ROOT) -> subprocess.Popen[bytes]:
        with open(self.workdir / log, "ab") as out:
            process = subprocess.Popen(args, cwd=cwd, env=self.env, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        self.running.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.running):
            processes.stop(process)
        self.running.clear()

    def logs(self) -> str:
        return "\n".join(f"--- {log.name} ---\n{log.read_text(errors='replace')[-3000:]}"
                         for log in sorted(self.workdir.glob("*.log")))


def certificate(workdir: Path) -> tuple[Path, Path]:
    cert, key = workdir / "tls.crt", workdir / "tls.key"
    subprocess.run([binary("openssl", "apt-get install openssl"), "req", "-x509", "-newkey",
                    "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={HOST}",
                    "-addext", f"subjectAltName=DNS:{HOST},IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def node_modules() -> None:
    """oidc-provider, from the lock file (npm ci), once per checkout."""
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        subprocess.run([binary("npm", "apt-get install npm"), "ci", "--no-audit", "--no-fund",
                        "--loglevel=error"], cwd=OIDC_DIR, check=True)


def site_env(workdir: Path, redis_url: str, **overrides: str) -> dict[str, str]:
    """Production settings (no debug, TLS assumed, manifest static files), pointed at the
    test database and the system suite's Redis."""
    return processes.environment(
        workdir,
        LETHE_DEBUG="0",
        LETHE_SECURE="1",
        LETHE_SECRET_KEY=secrets.token_urlsafe(40),
        LETHE_ALLOWED_HOSTS=HOST,
        LETHE_PROXY_ADDRESSES="127.0.0.1",  # as deploy/lethe.env.example has it
        LETHE_STATIC_ROOT=str(workdir / "static"),
        CELERY_BROKER_URL=f"{redis_url}/0",
        LETHE_REDIS_URL=f"{redis_url}/1",
        LETHE_CANCEL_WINDOW="0",
        LETHE_STUCK_AFTER="30",
        LETHE_SWEEP_INTERVAL="1",
        LETHE_ERASE_BATCH="0",
        **overrides,
    )


def bring_up(site: Site, identity: str, identity_values: dict[str, str] | None = None,
             workers: bool = True) -> None:
    """collectstatic, gunicorn, (worker and beat), nginx: in that order, each waited for."""
    workdir, env = site.workdir, site.env
    subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "manage.py", "collectstatic",
                    "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
    app_port = free_port()
    paths = {"/opt/lethe": str(ROOT), "/var/lib/lethe": str(workdir),
             "127.0.0.1:8000": f"127.0.0.1:{app_port}", "%H": "e2e"}
    web = unit_command("lethe-web.service", paths)
    web[web.index("--workers") + 1] = "2"  # a small machine, several sites
    gunicorn = site.start(web, "gunicorn.log")
    if workers:
        site.start(unit_command("lethe-worker.service", paths), "worker.log", cwd=workdir)
        site.start(unit_command("lethe-beat.service", paths), "beat.log", cwd=workdir)
    wait_until_listening(app_port, "gunicorn", gunicorn)

    cert, key = certificate(workdir)
    identity_file = workdir / "identity.conf"
    identity_file.write_text(render(DEPLOY / "nginx" / identity, identity_values or {}))
    site_conf = render(DEPLOY / "nginx" / "lethe.conf", {
        "LETHE_SERVER_NAME": HOST, "LETHE_HTTP_PORT": str(site.http_port),
        "LETHE_HTTPS_PORT": str(site.https_port), "LETHE_TLS_CERT": str(cert),
        "LETHE_TLS_KEY": str(key), "LETHE_UPSTREAM": f"127.0.0.1:{app_port}",
        "LETHE_IDENTITY": str(identity_file),
    })
    (workdir / "site.conf").write_text(site_conf)
    # The part of nginx.conf Debian ships (and the site does not set), with test paths.
    # As root (containers), nginx's workers would run as nobody and could not read the test's
    # private temporary folder: keep them root. Production runs Debian's own nginx.conf.
    user = "user root;" if os.geteuid() == 0 else ""
    (workdir / "nginx.conf").write_text(f"""
{user}
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    include /etc/nginx/mime.types;
    access_log {workdir}/nginx-access.log;
    client_body_temp_path {workdir}/nginx-body;
    proxy_temp_path {workdir}/nginx-proxy;
    fastcgi_temp_path {workdir}/nginx-fastcgi;
    uwsgi_temp_path {workdir}/nginx-uwsgi;
    scgi_temp_path {workdir}/nginx-scgi;
    include {workdir}/site.conf;
}}
""")
    nginx = binary("nginx", "apt-get install nginx")
    subprocess.run([nginx, "-t", "-q", "-c", str(workdir / "nginx.conf"), "-p", str(workdir)],
                   check=True)
    proxy = site.start([nginx, "-c", str(workdir / "nginx.conf"), "-p", str(workdir)],
                       "nginx.log")
    wait_until_listening(site.https_port, "nginx", proxy)


def oidc_provider(site: Site, client_id: str, client_secret: str, groups: str) -> str:
    """Start oidc-provider for this site's callback; its issuer URL."""
    node_modules()
    port = free_port()
    process = site.start([binary("node", "apt-get install nodejs"), "server.mjs", str(port),
                          client_id, client_secret, f"{site.url}/oidc/callback/", groups],
                         "oidc.log", cwd=OIDC_DIR)
    wait_until_listening(port, "oidc-provider", process)
    return f"http://127.0.0.1:{port}"


def new_site(tmp: Path, redis_url: str, **overrides: str) -> Site:
    tmp.mkdir(parents=True, exist_ok=True)
    return Site(tmp, free_port(), free_port(), site_env(tmp, redis_url, **overrides))
