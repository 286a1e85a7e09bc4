"""The whole nzbmesh system as real processes, for end-to-end tests.

Starts, on loopback with free ports: the test news server (with releases from
a spool folder and a control API for faults and counters), the broker, two
importers, two frontends and the speed-test service, all against a fresh
database in the PostgreSQL named by NZBMESH_PG_URL. Every wait has a deadline.
"""
import atexit
import base64
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET


_PORT_LOCKS = "/tmp/nzbmesh-test-ports"
_held_ports = []


def _release_ports():
    for path in _held_ports:
        try:
            os.unlink(path)
        except OSError:
            pass


atexit.register(_release_ports)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def free_port():
    """A loopback port for a service this test starts later.

    Not from the kernel's ephemeral range: a port bound to 0 and released can
    be handed out again at once as the local port of any outgoing connection
    (the suites open thousands), and the service then fails with "address
    already in use". The ports come from below that range, each reserved by a
    lock file holding this process's pid, so suites running side by side
    (Bazel runs tests in parallel) never pick the same one; a lock left by a
    dead process is taken over.
    """
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            ephemeral_lo = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral_lo = 32768
    lo, hi = 15000, max(15001, min(ephemeral_lo, 65536) - 1)
    os.makedirs(_PORT_LOCKS, exist_ok=True)
    rng = random.SystemRandom()
    for _ in range(2000):
        port = rng.randint(lo, hi)
        path = os.path.join(_PORT_LOCKS, str(port))
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                with open(path) as f:
                    owner = int(f.read().strip() or 0)
            except (OSError, ValueError):
                continue
            if owner and not _pid_alive(owner):
                try:
                    os.unlink(path)
                except OSError:
                    pass
            continue
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                os.unlink(path)
                continue
        _held_ports.append(path)
        return port
    raise AssertionError(f"no free loopback port in [{lo}, {hi}]")


def runfile(path):
    root = os.environ.get("TEST_SRCDIR")
    if root:
        candidate = os.path.join(root, os.environ.get("TEST_WORKSPACE", "nzbmesh"), path)
        if os.path.exists(candidate):
            return candidate
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(here, "..", "..", path)


def wait_for(cond, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if cond():
                return
        except Exception:  # the thing being waited for may not be up yet
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def sha256(data):
    return hashlib.sha256(data).hexdigest()


class Process:
    def __init__(self, name, argv, env, log_dir):
        self.name, self.argv, self.env = name, argv, env
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=log)
        return self

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""


class Stack:
    MAX_CONNECTIONS = 6
    PART_SIZE = 262144  # decoded bytes per article
    API_KEY = "e2e-api-key"
    DAV_USER, DAV_PASS = "player", "secret"

    def __init__(self, releases, providers=None):
        """releases: {name: bytes} for single files, or {name: {file: bytes}} for sets.

        providers: the broker's providers, each served by its own test news
        server process holding every release under the same message-ids:
        [{"name": ..., "backbone": "", "backup": False, "max_connections": N,
          "extra": {yaml key: value}}]. Default: one provider "e2e" with
        MAX_CONNECTIONS. The first provider's server is `news()`/`spool`."""
        self.tmp = tempfile.mkdtemp(prefix="nzbmesh-e2e-")
        self.logs = os.path.join(self.tmp, "logs")
        os.makedirs(self.logs)
        self.providers = [dict(p) for p in (providers or [{"name": "e2e"}])]
        for p in self.providers:
            p.setdefault("max_connections", self.MAX_CONNECTIONS)
            p["spool"] = os.path.join(self.tmp, "spool" if p is self.providers[0] else f"spool-{p['name']}")
            os.makedirs(p["spool"])
            for name, content in releases.items():
                if isinstance(content, dict):
                    d = os.path.join(p["spool"], name)
                    os.makedirs(d)
                    for f, data in content.items():
                        with open(os.path.join(d, f), "wb") as out:
                            out.write(data)
                else:
                    with open(os.path.join(p["spool"], name), "wb") as out:
                        out.write(content)
        self.spool = self.providers[0]["spool"]
        self.procs = {}
        self.env = dict(os.environ)
        self.env["NZBMESH_API_KEY"] = self.API_KEY
        self.env["NZBMESH_WEBDAV_PASSWORD"] = self.DAV_PASS
        self.env["NZBMESH_NNTP_PASSWORD"] = "nntp-pass"

    # -- lifecycle -----------------------------------------------------------
    def start_or_dump(self, then=None, **kwargs):
        """start(**kwargs), then `then()` if given; on any failure prints the
        services' log tails, stops everything and re-raises (a suite's
        setUpClass)."""
        try:
            self.start(**kwargs)
            if then is not None:
                then()
        except Exception:
            print(self.logs_tail())
            self.stop()
            raise

    def start(self, own_postgres=False):
        """own_postgres: run a private PostgreSQL cluster (so a test may
        restart it) instead of a database in NZBMESH_PG_URL's server."""
        if own_postgres:
            self.pg_dir = tempfile.mkdtemp(prefix="nzbmesh-e2e-pg-", dir="/tmp")
            self.pg_port = free_port()
            pg = self.postgres("start")
        else:
            pg = os.environ.get("NZBMESH_PG_URL")
            if not pg:
                raise AssertionError("NZBMESH_PG_URL is not set: run through ./deploy/local/test.sh")
        self.db = f"e2e_{os.getpid()}_{random.randrange(1 << 30)}"
        subprocess.run(["psql", pg, "-qc", f"CREATE DATABASE {self.db}"], check=True)
        base = pg.rsplit("/", 1)[0]
        self.env["NZBMESH_DATABASE_URL"] = f"{base}/{self.db}"
        self.pg_admin = pg

        self.controls = {}
        for i, p in enumerate(self.providers):
            p["port"] = free_port()
            proc_name = "nntp" if i == 0 else f"nntp-{p['name']}"
            ts = Process(proc_name, [runfile("tests/fakes/nntp_server/nntp_testserver"), f"--port={p['port']}",
                                     "--control_port=0", f"--spool={p['spool']}", "--user=e2e",
                                     "--pass=nntp-pass", f"--part_size={self.PART_SIZE}"], self.env, self.logs)
            ts.proc = subprocess.Popen(ts.argv, env=self.env, stdout=subprocess.PIPE,
                                       stderr=open(ts.log_path, "ab"))
            self.procs[proc_name] = ts
            line = b""
            deadline = time.time() + 60
            while b"control on" not in line and time.time() < deadline:
                line = ts.proc.stdout.readline()
                if not line and ts.proc.poll() is not None:
                    raise AssertionError("news server exited:\n" + ts.tail())
            self.controls[p["name"]] = int(line.decode().rsplit(":", 1)[1])
        self.nntp_port = self.providers[0]["port"]
        self.control = self.controls[self.providers[0]["name"]]

        self.ports = {k: free_port() for k in
                      ["broker", "broker_m", "imp1", "imp1_m", "imp2", "imp2_m", "fe1", "fe1_m", "fe2", "fe2_m",
                       "st", "st_m"]}
        self.config = os.path.join(self.tmp, "nzbmesh.yaml")
        self.write_config()
        self.start_broker()
        for i in (1, 2):
            self.start_importer(i)
        for i in (1, 2):
            self.start_frontend(i)
        self.start_speedtest()
        return self

    def write_config(self):
        p = self.ports
        cfg = f"""
broker:
  grpc_listen: 127.0.0.1:{p['broker']}
  metrics_listen: 127.0.0.1:{p['broker_m']}
  shutdown_grace: 2s
  stream_headroom: 4
  providers:
{self.providers_yaml()}
importer:
  grpc_listen: 127.0.0.1:{{imp}}
  metrics_listen: 127.0.0.1:{{imp_m}}
  broker: 127.0.0.1:{p['broker']}
  database_url_env: NZBMESH_DATABASE_URL
  workers: 1
  heartbeat_interval: 500ms
  heartbeat_timeout: 3s
  shutdown_grace: 2s
frontend:
  http_listen: 127.0.0.1:{{fe}}
  metrics_listen: 127.0.0.1:{{fe_m}}
  broker: 127.0.0.1:{p['broker']}
  importer: 127.0.0.1:{p['imp1']}
  api_key_env: NZBMESH_API_KEY
  shutdown_grace: 2s
  missing_segment_ttl: 1s
  request_timeout: 3s
  webdav_users:
    - username: {self.DAV_USER}
      password_env: NZBMESH_WEBDAV_PASSWORD
speedtest:
  grpc_listen: 127.0.0.1:{p['st']}
  metrics_listen: 127.0.0.1:{p['st_m']}
  broker: 127.0.0.1:{p['broker']}
  database_url_env: NZBMESH_DATABASE_URL
"""
        self.config_template = cfg

    def providers_yaml(self):
        out = []
        for p in self.providers:
            keys = {"name": p["name"], "host": "127.0.0.1", "port": p["port"], "username": "e2e",
                    "password_env": "NZBMESH_NNTP_PASSWORD", "max_connections": p["max_connections"],
                    "pipeline_depth": 2, "first_byte_timeout": "3s"}
            if p.get("backbone"):
                keys["backbone"] = p["backbone"]
            if p.get("backup"):
                keys["backup"] = "true"
            keys.update(p.get("extra", {}))
            lines = [f"      {k}: {v}" for k, v in keys.items()]
            lines[0] = "    - " + lines[0].lstrip()
            out += lines
        # Doubled braces: the result is part of a str.format template.
        return "\n".join(out).replace("{", "{{").replace("}", "}}")

    def config_for(self, imp=1, fe=1):
        p = self.ports
        path = os.path.join(self.tmp, f"nzbmesh-{imp}-{fe}.yaml")
        with open(path, "w") as f:
            f.write(self.config_template.format(imp=p[f"imp{imp}"], imp_m=p[f"imp{imp}_m"],
                                                fe=p[f"fe{fe}"], fe_m=p[f"fe{fe}_m"]))
        return path

    def _service(self, name, binary, config, metrics_port):
        proc = Process(name, [runfile(binary), f"--config={config}"], self.env, self.logs).start()
        self.procs[name] = proc
        wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=1).status == 200,
                 60, f"{name} metrics endpoint\n" + proc.tail())
        return proc

    def start_broker(self):
        return self._service("broker", "services/broker/broker", self.config_for(), self.ports["broker_m"])

    def start_importer(self, i):
        return self._service(f"importer{i}", "services/importer/importer", self.config_for(imp=i),
                             self.ports[f"imp{i}_m"])

    def start_frontend(self, i):
        proc = self._service(f"frontend{i}", "services/frontend/frontend", self.config_for(fe=i),
                             self.ports[f"fe{i}_m"])
        wait_for(lambda: self.http(i, "GET", "/healthz")[0] == 200, 30, "frontend healthz")
        return proc

    def start_speedtest(self):
        return self._service("speedtest", "services/speedtest/speedtest", self.config_for(), self.ports["st_m"])

    def postgres(self, action):
        """start / stop the private cluster; returns the admin URL on start."""
        argv = [runfile("deploy/local/pg.sh"), action, os.path.join(self.pg_dir, "data")]
        if action == "start":
            argv.append(str(self.pg_port))
        r = subprocess.run(argv, capture_output=True, check=True, timeout=120)
        return r.stdout.decode().strip()

    def stop(self):
        for name in list(self.procs):
            self.procs[name].stop(timeout=10)
        if getattr(self, "pg_dir", None):
            self.postgres("stop")
            shutil.rmtree(self.pg_dir, ignore_errors=True)
            self.db = None
        if getattr(self, "db", None):
            subprocess.run(["psql", self.pg_admin, "-qc", f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)"],
                           check=False)
        if os.environ.get("NZBMESH_E2E_KEEP") is None:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def logs_tail(self):
        return "\n".join(f"--- {n}\n{p.tail()}" for n, p in self.procs.items())

    # -- clients -------------------------------------------------------------
    def ctl(self, *args, check=True, timeout=120):
        argv = [runfile("services/ctl/nzbmeshctl"), f"--broker=127.0.0.1:{self.ports['broker']}",
                f"--importer=127.0.0.1:{self.ports['imp1']}", f"--speedtest=127.0.0.1:{self.ports['st']}",
                f"--frontend=http://127.0.0.1:{self.ports['fe1']},http://127.0.0.1:{self.ports['fe2']}",
                "--output=json"] + list(args)
        r = subprocess.run(argv, env=self.env, capture_output=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"nzbmeshctl {' '.join(args)} exited {r.returncode}: {r.stderr.decode()}")
        return r

    def http(self, fe, method, path, headers=None, body=None, auth=True, timeout=60):
        url = f"http://127.0.0.1:{self.ports[f'fe{fe}']}{path}"
        req = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
        if auth:
            token = base64.b64encode(f"{self.DAV_USER}:{self.DAV_PASS}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def propfind(self, fe, path):
        """(href, is_collection, size) of a collection and its members (Depth 1)."""
        status, _, body = self.http(fe, "PROPFIND", urllib.parse.quote(path), headers={"Depth": "1"})
        if status != 207:
            raise AssertionError(f"PROPFIND {path}: {status} {body[:300]!r}")
        out = []
        for resp in ET.fromstring(body).iter("{DAV:}response"):
            href = urllib.parse.unquote(resp.find("{DAV:}href").text)
            is_dir = resp.find(".//{DAV:}collection") is not None
            size = resp.find(".//{DAV:}getcontentlength")
            out.append((href, is_dir, int(size.text) if size is not None and size.text else 0))
        return out

    def find_files(self, fe=1, path="/dav/"):
        """Every file below `path`, recursively, as (href, size)."""
        files = []
        for href, is_dir, size in self.propfind(fe, path):
            if href.rstrip("/") == path.rstrip("/"):
                continue
            if is_dir:
                files += self.find_files(fe, href if href.endswith("/") else href + "/")
            else:
                files.append((href, size))
        return files

    def auth_header(self):
        token = base64.b64encode(f"{self.DAV_USER}:{self.DAV_PASS}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def news(self, path):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.control}{path}", timeout=10) as r:
            return json.loads(r.read() or b"{}")

    def news_at(self, provider, path):
        """The control API of the news server behind `provider` (by name)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.controls[provider]}{path}", timeout=10) as r:
            return json.loads(r.read() or b"{}")

    def nzb(self, release):
        with open(os.path.join(self.spool, release + ".nzb"), "rb") as f:
            return f.read()

    def nzb_path(self, release):
        return os.path.join(self.spool, release + ".nzb")
