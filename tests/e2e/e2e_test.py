"""End-to-end tests: the real processes, real sockets, real PostgreSQL.

Import -> stream -> SHA-256 equal (plain, obfuscated RAR5 set with PAR2,
through nzbmeshctl, SABnzbd addfile and SABnzbd addurl from an indexer over
HTTP with a redirect); kill -9 of the broker, an
importer and a frontend with nothing lost; hostile input with exact answers
and the system still serving afterwards; the provider budget under mixed load
counted at the news server.
"""
import http.client
import http.server
import json
import os
import random
import re
import socket
import threading
import time
import unittest
import urllib.parse

from stack import Stack, runfile, sha256, wait_for

RNG = random.Random(20261125)
PLAIN = bytes(RNG.getrandbits(8) for _ in range(3 * 1024 * 1024 + 12345))
BIG = bytes(RNG.getrandbits(8) for _ in range(8 * 1024 * 1024 + 7))
SLOW = bytes(RNG.getrandbits(8) for _ in range(4 * 1024 * 1024 + 3))
OBFUSCATED_NAME = "b3f9a1c04e7d2a6f9c8e1d0b7a3f5e21"
ADDURL = PLAIN[::-1][:1500000]  # distinct bytes without drawing from RNG
# Mixed load (test_30): files no other test reads, so no frontend cache
# answers for them: one measured idle, four played under load, three imported
# under load, one for the speed test.
LOAD_RNG = random.Random(30)
IDLE = LOAD_RNG.randbytes(4 * 1024 * 1024 + 11)
PLAY = {f"play{i}.mkv": LOAD_RNG.randbytes(24 * 262144 + i) for i in range(4)}  # 25 articles
IMPORTS = {f"import{i}.mkv": LOAD_RNG.randbytes(1024 * 1024 + i) for i in range(3)}
SPEED = LOAD_RNG.randbytes(2 * 1024 * 1024)


def rar5_set_obfuscated():
    """The stored RAR5 volume set with PAR2, volumes renamed to random hex."""
    base = runfile("tests/testdata/archives/rar5/store-vols")
    files = {}
    for name in sorted(os.listdir(base)):
        with open(os.path.join(base, name), "rb") as f:
            data = f.read()
        if name.endswith(".rar"):
            name = "%032x" % RNG.getrandbits(128)
        files[name] = data
    return files


def manifest_file(set_id, inner):
    with open(runfile("tests/testdata/archives/manifest.json")) as f:
        m = json.load(f)
    s = [x for x in m["sets"] if x["id"] == set_id][0]
    return [x for x in s["files"] if x["name"] == inner][0]


class LoadStack(Stack):
    """The stack with a health sweep running all along (every second, in the
    broker's HEALTH class) and test articles for the speed-test service."""

    def write_config(self):
        super().write_config()
        marker = "  heartbeat_timeout: 3s\n"
        assert self.config_template.count(marker) == 1, "the importer section changed"
        self.config_template = self.config_template.replace(
            marker, marker + "  health:\n    enabled: true\n    interval: 1s\n")
        sections = re.findall(r"^(\w+):$", self.config_template, re.M)
        assert sections[-1] == "speedtest", f"speedtest is no longer the last section: {sections}"
        self.config_template = self.config_template.rstrip("\n") + f"\n  default_nzb: {self.nzb_path('speed.bin')}\n"


class E2E(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = LoadStack({
            "plain.mkv": PLAIN,
            "big.mkv": BIG,
            "slow.mkv": SLOW,
            "addurl.mkv": ADDURL,
            OBFUSCATED_NAME: PLAIN[:500000],
            "rar5set": rar5_set_obfuscated(),
            "idle.mkv": IDLE,
            "speed.bin": SPEED,
            **PLAY,
            **IMPORTS,
        })
        cls.stack.start_or_dump()

    @classmethod
    def tearDownClass(cls):
        cls.stack.stop()

    def tearDown(self):
        # Every test leaves the system serving.
        s = self.stack
        for name, p in s.procs.items():
            self.assertTrue(p.alive(), f"{name} died:\n{p.tail()}")
        self.assertEqual(s.http(1, "GET", "/healthz")[0], 200)
        budget = s.news("/stats")["max_concurrent_connections"]
        self.assertLessEqual(budget, Stack.MAX_CONNECTIONS, "provider budget exceeded")

    # -- helpers ---------------------------------------------------------------
    def find_files(self, fe=1, path="/dav/"):
        return self.stack.find_files(fe, path)

    def import_ctl(self, release, category):
        r = self.stack.ctl("import", self.stack.nzb_path(release), "--category", category, "--wait", timeout=300)
        job = json.loads(r.stdout)
        self.assertEqual(job.get("state"), "COMPLETED", r.stdout)
        return job

    def get(self, href, fe=1, rng=None):
        headers = {"Range": rng} if rng else {}
        return self.stack.http(fe, "GET", urllib.parse.quote(href), headers=headers)

    def file_in(self, category, suffix):
        matches = [(h, s) for h, s in self.find_files(1, f"/dav/{category}/") if h.endswith(suffix)]
        self.assertEqual(len(matches), 1, self.find_files(1, f"/dav/{category}/"))
        return matches[0]

    # -- import and stream -----------------------------------------------------
    def test_01_import_with_nzbmeshctl_then_stream_byte_exact(self):
        self.import_ctl("plain.mkv", "movies")
        href, size = self.file_in("movies", "plain.mkv")
        self.assertEqual(size, len(PLAIN))
        status, headers, body = self.get(href)
        self.assertEqual(status, 200)
        self.assertEqual(sha256(body), sha256(PLAIN))
        # Seeks as players do: ranges across segment boundaries, suffix, EOF straddle.
        for rng, want in [("bytes=262140-262150", PLAIN[262140:262151]),
                          ("bytes=-100", PLAIN[-100:]),
                          (f"bytes={len(PLAIN) - 10}-{len(PLAIN) + 100}", PLAIN[-10:]),
                          ("bytes=1000000-", PLAIN[1000000:])]:
            status, headers, body = self.get(href, rng=rng)
            self.assertEqual(status, 206, rng)
            self.assertEqual(body, want, rng)
        status, _, _ = self.get(href, rng=f"bytes={len(PLAIN) + 5}-")
        self.assertEqual(status, 416)
        # The same file through the second frontend.
        status, _, body = self.get(href, fe=2, rng="bytes=5-99")
        self.assertEqual((status, body), (206, PLAIN[5:100]))

    def test_02_addfile_obfuscated_rar5_set_with_par2(self):
        s = self.stack
        boundary = "nzbmeshboundary"
        nzb = s.nzb("rar5set")
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"; filename=\"Some.Release.nzb\"\r\n"
                f"Content-Type: application/x-nzb\r\n\r\n").encode() + nzb + f"\r\n--{boundary}--\r\n".encode()
        status, _, resp = s.http(1, "POST", f"/sabnzbd/api?mode=addfile&cat=tv&apikey={Stack.API_KEY}&output=json",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                                 body=body, auth=False)
        self.assertEqual(status, 200, resp)
        self.assertTrue(json.loads(resp).get("status"), resp)
        want = manifest_file("rar5/store-vols", "vols/bigfile.txt")
        wait_for(lambda: any(h.endswith("bigfile.txt") for h, _ in self.find_files(1, "/dav/tv/")), 180,
                 "the RAR5 member in the catalog\n" + s.logs_tail())
        href, size = self.file_in("tv", "bigfile.txt")
        self.assertEqual(size, want["size"])
        status, _, data = self.get(href)
        self.assertEqual(status, 200)
        self.assertEqual(sha256(data), want["sha256"])

    def test_03_obfuscated_single_file_streams(self):
        self.import_ctl(OBFUSCATED_NAME, "misc")
        files = self.find_files(1, "/dav/misc/")
        self.assertEqual(len(files), 1, files)
        status, _, data = self.get(files[0][0])
        self.assertEqual((status, sha256(data)), (200, sha256(PLAIN[:500000])))

    def test_04_same_nzb_twice_is_one_release(self):
        before = self.find_files(1, "/dav/movies/")
        r = self.stack.ctl("import", self.stack.nzb_path("plain.mkv"), "--category", "movies", "--wait", check=False)
        self.assertIn(r.returncode, (0,), r.stderr)
        self.assertEqual(self.find_files(1, "/dav/movies/"), before)

    def test_05_addurl_fetches_from_an_indexer_then_streams_byte_exact(self):
        s = self.stack
        nzb = s.nzb("addurl.mkv")
        seen = []

        class Indexer(http.server.BaseHTTPRequestHandler):
            """An indexer: the API URL redirects to the download, which names the file."""
            def do_GET(self):
                seen.append(self.path)
                if self.path.startswith("/api?"):
                    self.send_response(302)
                    self.send_header("Location", "/getnzb/42")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-nzb")
                self.send_header("Content-Disposition", 'attachment; filename="Addurl.Release.2026.nzb"')
                self.send_header("Content-Length", str(len(nzb)))
                self.end_headers()
                self.wfile.write(nzb)

            def log_message(self, *args):
                pass

        indexer = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Indexer)
        threading.Thread(target=indexer.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{indexer.server_address[1]}/api?t=get&id=42&apikey=indexer-secret"
            q = urllib.parse.urlencode({"mode": "addurl", "name": url, "cat": "movies",
                                        "apikey": Stack.API_KEY, "output": "json"})
            status, _, resp = s.http(1, "GET", f"/sabnzbd/api?{q}", auth=False)
        finally:
            indexer.shutdown()
            indexer.server_close()
        self.assertEqual(status, 200, resp)
        self.assertTrue(json.loads(resp)["status"], resp)
        self.assertEqual(seen, ["/api?t=get&id=42&apikey=indexer-secret", "/getnzb/42"])
        # A missing download is an exact SABnzbd error, not a job.
        q = urllib.parse.urlencode({"mode": "addurl", "name": url, "apikey": Stack.API_KEY, "output": "json"})
        status, _, resp = s.http(1, "GET", f"/sabnzbd/api?{q}", auth=False)
        self.assertEqual(status, 200)
        self.assertTrue(json.loads(resp)["error"].startswith(
            f"cannot fetch NZB from http://127.0.0.1:{indexer.server_address[1]}/api: cannot connect to"), resp)
        wait_for(lambda: any(h.endswith("addurl.mkv") for h, _ in self.find_files(1, "/dav/movies/")), 180,
                 "the addurl release in the catalog\n" + s.logs_tail())
        href, size = self.file_in("movies", "addurl.mkv")
        self.assertIn("/Addurl.Release.2026/", href)  # named after the Content-Disposition file
        self.assertEqual(size, len(ADDURL))
        status, _, data = self.get(href)
        self.assertEqual((status, sha256(data)), (200, sha256(ADDURL)))

    # -- faults ----------------------------------------------------------------
    def test_10_kill9_broker_mid_stream_client_retry_resumes(self):
        s = self.stack
        self.import_ctl("big.mkv", "movies")
        href, size = self.file_in("movies", "big.mkv")
        s.news("/fault?latency_ms=40")
        got = bytearray()
        conn = http.client.HTTPConnection("127.0.0.1", s.ports["fe1"], timeout=30)
        conn.request("GET", urllib.parse.quote(href), headers=self._auth())
        resp = conn.getresponse()
        self.assertEqual(resp.status, 200)
        got += resp.read(1024 * 1024)
        s.procs["broker"].kill9()
        try:
            while True:
                chunk = resp.read(65536)
                if not chunk:
                    break
                got += chunk
        except Exception:
            pass  # the response is cut: the client retries with a range
        conn.close()
        s.news("/clear")
        s.start_broker()
        # The client resumes at the right offset (as players do).
        wait_for(lambda: self.get(href, rng=f"bytes={len(got)}-")[0] == 206, 60, "stream after broker restart")
        status, _, rest = self.get(href, rng=f"bytes={len(got)}-")
        self.assertEqual(status, 206)
        self.assertEqual(sha256(bytes(got) + rest), sha256(BIG))

    def test_11_kill9_importer_mid_job_other_importer_finishes(self):
        s = self.stack
        s.news("/fault?latency_ms=300")
        r = s.ctl("import", s.nzb_path("slow.mkv"), "--category", "again")
        job_id = str(json.loads(r.stdout)["job_id"])
        owner = None

        def running():
            nonlocal owner
            j = json.loads(s.ctl("job", job_id).stdout)
            owner = j.get("owner")
            return j.get("state") == "RUNNING" and owner
        wait_for(running, 60, "job running")
        # Kill the importer process that owns the job (the owner names its pid).
        victim = next((n for n in ("importer1", "importer2") if str(s.procs[n].proc.pid) in str(owner)), None)
        self.assertIsNotNone(victim, f"job owner {owner!r} names neither importer")
        survivor = 2 if victim == "importer1" else 1
        s.procs[victim].kill9()
        s.news("/clear")
        wait_for(lambda: self._job_via(survivor, job_id).get("state") == "COMPLETED", 120,
                 "job completed by the other importer\n" + s.logs_tail())
        self.assertEqual(self._job_via(survivor, job_id).get("attempts"), 2)
        s.start_importer(1 if victim == "importer1" else 2)
        href, size = self.file_in("again", "slow.mkv")
        self.assertEqual(size, len(SLOW))
        status, _, data = self.get(href)
        self.assertEqual((status, sha256(data)), (200, sha256(SLOW)))

    def _job_via(self, importer, job_id):
        s = self.stack
        r = s.ctl(f"--importer=127.0.0.1:{s.ports[f'imp{importer}']}", "job", job_id)
        return json.loads(r.stdout)

    def test_12_frontend_killed_mid_stream_client_resumes_on_the_other(self):
        s = self.stack
        href, _ = self.file_in("movies", "big.mkv")
        s.news("/fault?latency_ms=30")
        conn = http.client.HTTPConnection("127.0.0.1", s.ports["fe1"], timeout=30)
        conn.request("GET", urllib.parse.quote(href), headers=self._auth())
        resp = conn.getresponse()
        got = bytearray(resp.read(512 * 1024))
        s.procs["frontend1"].kill9()
        try:
            while True:
                chunk = resp.read(65536)
                if not chunk:
                    break
                got += chunk
        except Exception:
            pass
        conn.close()
        s.news("/clear")
        status, _, rest = self.get(href, fe=2, rng=f"bytes={len(got)}-")
        self.assertEqual(status, 206)
        self.assertEqual(sha256(bytes(got) + rest), sha256(BIG))
        s.start_frontend(1)
        # The broker released the dead frontend's session and fetches.
        wait_for(lambda: "nzbmesh_broker_stream_sessions 0" in self._metrics("broker_m"), 30, "sessions back to 0")

    # -- hostile input ---------------------------------------------------------
    def test_20_hostile_nzbs_are_rejected_with_a_reason(self):
        s = self.stack
        bomb = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
                b'<nzb xmlns="http://www.newzbin.com/DTD/2003/nzb"><file subject="&lol2;"/></nzb>')
        xxe = (b'<?xml version="1.0"?><!DOCTYPE nzb [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
               b'<nzb><file subject="&x;"/></nzb>')
        # Path traversal in the subject and the NZB name (message-ids untouched).
        traversal = s.nzb("plain.mkv").replace(b"&quot;plain.mkv&quot;", b"&quot;../../../etc/passwd&quot;")
        self.assertNotEqual(traversal, s.nzb("plain.mkv"))
        for name, nzb in [("bomb", bomb), ("xxe", xxe), ("traversal", traversal)]:
            path = os.path.join(s.tmp, f"..%2f{name}.nzb")
            with open(path, "wb") as f:
                f.write(nzb)
            r = s.ctl("import", path, "--category", "hostile", "--wait", check=False, timeout=120)
            if name == "traversal":
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                # Accepted, but the name is sanitised: nothing escapes the release folder.
                for href, _ in self.find_files(1, "/dav/hostile/"):
                    self.assertNotIn("..", href)
                    self.assertTrue(href.startswith("/dav/hostile/"), href)
            else:
                self.assertEqual(r.returncode, 5, r.stdout + r.stderr)
                self.assertIn(b"BAD_NZB", r.stdout + r.stderr)

    def test_21_hostile_http_gets_exact_answers(self):
        s = self.stack
        self.assertEqual(s.http(1, "GET", "/dav/../../etc/passwd")[0], 400)
        self.assertEqual(s.http(1, "GET", "/dav/%2e%2e/%2e%2e/etc/passwd")[0], 400)
        self.assertEqual(s.http(1, "GET", "/dav/", auth=False)[0], 401)
        files = self.find_files(1, "/dav/misc/")
        # 10,000 ranges do not fit the header limit: 431. 1,000 fit but exceed max_ranges: 416.
        ranges = "bytes=" + ",".join(f"{i}-{i}" for i in range(0, 20000, 2))
        self.assertEqual(self.get(files[0][0], rng=ranges)[0], 431)
        ranges = "bytes=" + ",".join(f"{i}-{i}" for i in range(0, 2000, 2))
        self.assertEqual(self.get(files[0][0], rng=ranges)[0], 416)
        # A 1 MB header is refused; the connection is closed, the server lives.
        sock = socket.create_connection(("127.0.0.1", s.ports["fe1"]), timeout=10)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n")
        reply = sock.recv(100)
        sock.close()
        self.assertIn(b"431", reply)
        # A 2 GB NZB upload is refused from its Content-Length, before the body.
        sock = socket.create_connection(("127.0.0.1", s.ports["fe1"]), timeout=10)
        sock.sendall(f"POST /sabnzbd/api?mode=addfile&apikey={Stack.API_KEY} HTTP/1.1\r\nHost: x\r\n"
                     "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 2147483648\r\n\r\n".encode())
        reply = sock.recv(200)
        sock.close()
        self.assertIn(b"413", reply)
        # Slowloris: a request that never completes is cut off, the server lives.
        sock = socket.create_connection(("127.0.0.1", s.ports["fe1"]), timeout=60)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        started = time.time()
        while sock.recv(4096):  # a 408 may come first; then the connection closes
            pass
        self.assertLess(time.time() - started, 30, "the server must close a request that never ends")
        sock.close()
        # A flood of bad Basic auth: every one 401, nothing else changes.
        import base64
        bad = base64.b64encode(b"player:wrong").decode()
        for _ in range(200):
            self.assertEqual(s.http(1, "GET", "/dav/", headers={"Authorization": f"Basic {bad}"}, auth=False)[0], 401)

    # -- mixed load --------------------------------------------------------------
    LATENCY_S = 0.25           # news-server latency before every article reply in test_30
    PACE = 1536 * 1024         # a player's consumption, bytes/s (well below what one stream gets)
    CHUNK = 64 * 1024          # a player's read size

    def _play(self, href, fe, out, paced=True, first=0, last=None):
        """Plays bytes [first, last] of href (206 for a range): out gets ttfb
        (request -> first byte), stalls (how long each later read blocked the
        player), sha, elapsed (first byte -> last)."""
        s = self.stack
        headers = self._auth()
        if first or last is not None:
            headers["Range"] = f"bytes={first}-{'' if last is None else last}"
        t_req = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", s.ports[f"fe{fe}"], timeout=60)
        try:
            conn.request("GET", urllib.parse.quote(href), headers=headers)
            resp = conn.getresponse()
            out["status"] = resp.status
            data = bytearray(resp.read(1))
            t_first = time.monotonic()
            out["ttfb"] = t_first - t_req
            stalls = []
            while True:
                if paced:  # the player asks for the next chunk when it has played the bytes it holds
                    ahead = t_first + len(data) / self.PACE - time.monotonic()
                    if ahead > 0:
                        time.sleep(ahead)
                t_ask = time.monotonic()
                chunk = resp.read(self.CHUNK)
                if not chunk:
                    break
                stalls.append(time.monotonic() - t_ask)
                data += chunk
            out["elapsed"] = time.monotonic() - t_first
            out["stalls"] = stalls
            out["sha"] = sha256(bytes(data))
        except Exception as e:  # recorded and asserted by the caller
            out["error"] = repr(e)
        finally:
            conn.close()

    def _play_all(self, first, last):
        """The four players at once (alternating frontends); {name: _play result}."""
        plays = {name: {} for name in PLAY}
        hrefs = {name: self.file_in("play", name)[0] for name in PLAY}
        players = [threading.Thread(target=self._play, args=(hrefs[name], 1 + i % 2, plays[name]),
                                    kwargs={"first": first, "last": last})
                   for i, name in enumerate(PLAY)]
        for t in players:
            t.start()
        for t in players:
            t.join(300)
        return plays

    def test_30_mixed_load_stays_within_the_budget_and_playback_keeps_its_pace(self):
        """4 streams playing, 3 imports, the health sweep and a speed test at once.

        Budget: connections counted at the news server never exceed
        max_connections. Playback: every article reply waits LATENCY_S at the
        news server; "segment time" is LATENCY_S + one article (PART_SIZE) at
        the rate one stream measured idle in this run. The four players start
        together twice: idle (nothing else running but the health sweep) on
        the last 8 articles of their files, then under load on the first 16
        (never fetched before, so no frontend cache answers). For each player
        max(ttfb under load, segment time) <= 2 x max(its own idle ttfb,
        segment time), and no read of a player consuming at PACE blocks
        longer than one segment time, idle or under load.
        """
        s = self.stack
        self.import_ctl("idle.mkv", "idle")
        for name in PLAY:
            self.import_ctl(name, "play")
        split = 16 * Stack.PART_SIZE  # load: articles 1-16; idle: 17-25
        s.news(f"/fault?latency_ms={int(self.LATENCY_S * 1000)}")
        try:
            # Idle, same run: one stream at full speed (the rate), then the four players.
            href_idle, _ = self.file_in("idle", "idle.mkv")
            full = {}
            self._play(href_idle, 1, full, paced=False)
            self.assertEqual((full.get("status"), full.get("sha")), (200, sha256(IDLE)), full.get("error"))
            rate = len(IDLE) / full["elapsed"]
            segment_time = self.LATENCY_S + Stack.PART_SIZE / rate
            idle = self._play_all(split, None)

            s.news("/reset")
            checked = self._health_checks()
            results = {}
            stop_at = {}

            def run(key, fn):
                try:
                    results[key] = fn()
                except Exception as e:  # recorded and asserted below
                    results[key] = e
                stop_at[key] = time.monotonic()
            load = [threading.Thread(target=run, args=(name, lambda n=name: s.ctl(
                        "import", s.nzb_path(n), "--category", "load", "--wait", check=False, timeout=300)))
                    for name in IMPORTS]
            load.append(threading.Thread(target=run, args=("speedtest", lambda: s.ctl(
                "speedtest", "e2e", "--duration", "6s", "--force", check=False, timeout=120))))
            for t in load:
                t.start()
            # The players start once the imports and the speed test are on the wire.
            wait_for(lambda: s.news("/stats")["total_commands"] >= 20, 60, "import and speed-test traffic")
            streams_start = time.monotonic()
            plays = self._play_all(0, split - 1)
            for t in load:
                t.join(300)
        finally:
            s.news("/clear")

        stats = s.news("/stats")
        self.assertLessEqual(stats["max_concurrent_connections"], Stack.MAX_CONNECTIONS, stats)
        for name in IMPORTS:
            r = results[name]
            self.assertFalse(isinstance(r, Exception), r)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(json.loads(r.stdout).get("state"), "COMPLETED", r.stdout)
        st = results["speedtest"]
        self.assertFalse(isinstance(st, Exception), st)
        self.assertEqual(st.returncode, 0, st.stderr)
        self.assertGreater(int(json.loads(st.stdout).get("bytes", 0)), 0, st.stdout)
        # The load really overlapped playback: the speed test and the last import
        # were still running when the players began, and the health sweep
        # checked articles meanwhile.
        self.assertGreater(max(stop_at[n] for n in IMPORTS), streams_start)
        self.assertGreater(stop_at["speedtest"], streams_start)
        self.assertGreater(self._health_checks(), checked, "no health sweep during the load")

        def summary(p):
            return {"ttfb": round(p.get("ttfb", -1), 3), "max_stall": round(max(p.get("stalls") or [0]), 3)}
        report = {n: {"idle": summary(idle[n]), "load": summary(plays[n])} for n in PLAY}
        print(f"mixed load: segment time {segment_time:.3f}s (idle rate {rate / 1e6:.1f} MB/s), {report}")
        for name, data in PLAY.items():
            for phase, p, want in (("idle", idle[name], data[split:]), ("load", plays[name], data[:split])):
                self.assertEqual((p.get("status"), p.get("sha")), (206, sha256(want)), (name, phase, p.get("error")))
                self.assertLessEqual(max(p["stalls"]), segment_time, (name, phase, report))
            # Each player against its own idle start. Both sides are floored at
            # one segment time: a first byte can never come sooner than one
            # article reply, so below it the difference is jitter, not load.
            self.assertLessEqual(max(plays[name]["ttfb"], segment_time),
                                 2 * max(idle[name]["ttfb"], segment_time), (name, report))

    def _health_checks(self):
        """Articles the importers' health sweeps have checked so far."""
        total = 0.0
        for port in ("imp1_m", "imp2_m"):
            for m in re.finditer(r'^nzbmesh_importer_segments_checked_total\{([^}]*)\} (\S+)$',
                                 self._metrics(port), re.M):
                if 'purpose="health"' in m.group(1):
                    total += float(m.group(2))
        return total

    def _auth(self):
        return self.stack.auth_header()

    def _metrics(self, port_key):
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{self.stack.ports[port_key]}/metrics", timeout=5) as r:
            return r.read().decode()


if __name__ == "__main__":
    unittest.main(verbosity=2)
