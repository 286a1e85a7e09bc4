"""End-to-end failover across providers, through the real processes.

Three providers, each its own test news server holding every release under
the same message-ids: alpha1 and alpha2 share the backbone "alpha"; beta (on
backbone "beta") is a backup, so the broker asks it only once no alpha
provider can serve an article — which makes every per-provider count below
exact, not a matter of the broker's weighted choice.

  * 430 on the whole alpha backbone: byte-exact stream; per article exactly
    one alpha provider is asked (the other is skipped with its backbone), then
    beta once.
  * 430 everywhere: 502 before headers for the first segment; for a later
    segment the response is cut after headers (fewer bytes than
    Content-Length, all of them right).
  * Hostile yEnc (a short part, a lying =yend size=, no =yend, a CRC
    mismatch) on one article of the whole alpha backbone: 2 attempts on each
    alpha provider, then the good copy from beta, byte-exact. The same damage
    on every provider: the documented outcome (the complete-but-unverified
    bytes, or a response cut after headers for a short part), and once the
    providers heal the file streams byte-exact again.
  * A reply that never ends (no "." line, the connection left open): cut by
    the broker's stall_timeout, its connection closed and never used again,
    then the good copy from beta.
After every test each news server saw at most max_connections connections and
the system still serves.
"""
import http.client
import random
import re
import unittest
import urllib.parse

from stack import Stack, sha256, wait_for

RNG = random.Random(4300)
SEG = Stack.PART_SIZE
# Four articles each (the last one partial): segment 2 is a middle one.
SIZE = 3 * SEG + 1000
HOSTILE = ["corrupt", "short_part", "wrong_size", "no_yend"]
FILES = {f"{name}.mkv": bytes(RNG.getrandbits(8) for _ in range(SIZE))
         for name in ["backbone", "everywhere", "later", "endless", "after"] + HOSTILE}
STALL_TIMEOUT_S = 2
PROVIDERS = [
    {"name": "alpha1", "backbone": "alpha", "extra": {"stall_timeout": f"{STALL_TIMEOUT_S}s"}},
    {"name": "alpha2", "backbone": "alpha", "extra": {"stall_timeout": f"{STALL_TIMEOUT_S}s"}},
    {"name": "beta", "backbone": "beta", "backup": True, "extra": {"stall_timeout": f"{STALL_TIMEOUT_S}s"}},
]
NAMES = [p["name"] for p in PROVIDERS]
ALPHA = ["alpha1", "alpha2"]


class Providers(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = Stack(dict(FILES), providers=PROVIDERS)

        def import_all():  # while every provider is healthy
            for name in FILES:
                cls.stack.ctl("import", cls.stack.nzb_path(name), "--category", "p", "--wait", timeout=300)
        cls.stack.start_or_dump(then=import_all)

    @classmethod
    def tearDownClass(cls):
        cls.stack.stop()

    def setUp(self):
        for n in NAMES:
            self.stack.news_at(n, "/clear")
            self.stack.news_at(n, "/reset")

    def tearDown(self):
        s = self.stack
        for n in NAMES:
            s.news_at(n, "/clear")
        for name, p in s.procs.items():
            self.assertTrue(p.alive(), f"{name} died:\n{p.tail()}")
        for n in NAMES:
            stats = s.news_at(n, "/stats")
            self.assertLessEqual(stats["max_concurrent_connections"], Stack.MAX_CONNECTIONS, f"{n}: {stats}")
        # Still serving: a file no test touches streams byte-exact.
        status, _, data = self.get("after.mkv", fe=2)
        self.assertEqual((status, sha256(data)), (200, sha256(FILES["after.mkv"])))

    # -- helpers -----------------------------------------------------------------
    def ids(self, name):
        """The file's message-ids in segment order (from its NZB)."""
        return re.findall(rb"<segment [^>]*>([^<]+)</segment>", self.stack.nzb(name))

    def href(self, name):
        [(href, size)] = [f for f in self.stack.find_files(1, "/dav/p/") if f[0].endswith("/" + name)]
        self.assertEqual(size, SIZE)
        return href

    def get(self, name, fe=1):
        return self.stack.http(fe, "GET", urllib.parse.quote(self.href(name)), timeout=120)

    def get_raw(self, name, fe=1):
        """(status, Content-Length, bytes received before the server ended or cut the response)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.stack.ports[f"fe{fe}"], timeout=120)
        conn.request("GET", urllib.parse.quote(self.href(name)), headers=self.stack.auth_header())
        resp = conn.getresponse()
        got = bytearray()
        try:
            while True:
                chunk = resp.read(65536)
                if not chunk:
                    break
                got += chunk
        except http.client.IncompleteRead as e:
            got += e.partial
        except (ConnectionError, OSError):
            pass  # cut after headers: what arrived is in `got`
        conn.close()
        return resp.status, int(resp.getheader("Content-Length", "-1")), bytes(got)

    def bodies(self, provider, message_id):
        """BODY commands the provider's news server received for one article."""
        mid = message_id.decode() if isinstance(message_id, bytes) else message_id
        return sum(1 for _, verb, i, _ in self.stack.news_at(provider, "/log") if verb == "BODY" and i == mid)

    def body_counts(self, message_id):
        return {n: self.bodies(n, message_id) for n in NAMES}

    def fault(self, providers, message_id=None, **kw):
        q = "&".join(f"{k}={v}" for k, v in kw.items())
        if message_id is not None:
            mid = message_id.decode() if isinstance(message_id, bytes) else message_id
            q += "&id=" + mid  # message-ids here are plain [a-z0-9.@]: the control API does not unquote
        for n in providers:
            self.stack.news_at(n, "/fault?" + q)

    def broker_metric(self, provider, result, cls="stream"):
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{self.stack.ports['broker_m']}/metrics", timeout=5) as r:
            text = r.read().decode()
        want = {"provider": provider, "class": cls, "result": result}
        for m in re.finditer(r'^nzbmesh_broker_commands_total\{([^}]*)\} (\S+)$', text, re.M):
            if dict(re.findall(r'(\w+)="([^"]*)"', m.group(1))) == want:
                return float(m.group(2))
        return 0.0

    # -- 430 ------------------------------------------------------------------------
    def test_1_430_on_a_whole_backbone_asks_one_of_its_providers_then_the_other_backbone(self):
        ids = self.ids("backbone.mkv")
        self.assertEqual(len(ids), 4)
        before = {n: self.broker_metric(n, "missing") for n in NAMES}
        beta_ok = self.broker_metric("beta", "ok")
        self.fault(ALPHA, missing=1)
        status, _, data = self.get("backbone.mkv")
        self.assertEqual((status, sha256(data)), (200, sha256(FILES["backbone.mkv"])))
        for mid in ids:
            counts = self.body_counts(mid)
            # One alpha provider said 430; the other shares its backbone and is skipped.
            self.assertEqual(counts["alpha1"] + counts["alpha2"], 1, (mid, counts))
            self.assertEqual(counts["beta"], 1, (mid, counts))
        # The broker's own account agrees: 4 misses on alpha, 4 articles from beta.
        missing = sum(self.broker_metric(n, "missing") - before[n] for n in ALPHA)
        self.assertEqual(missing, len(ids))
        self.assertEqual(self.broker_metric("beta", "missing"), before["beta"])
        self.assertEqual(self.broker_metric("beta", "ok") - beta_ok, len(ids))

    def test_2_430_everywhere_502_before_headers(self):
        ids = self.ids("everywhere.mkv")
        self.fault(NAMES, missing=1)
        status, _, body = self.get("everywhere.mkv")
        self.assertEqual(status, 502, body)
        counts = self.body_counts(ids[0])
        self.assertEqual(counts["alpha1"] + counts["alpha2"], 1, counts)
        self.assertEqual(counts["beta"], 1, counts)
        # Once the articles are back and missing_segment_ttl (1 s) passed, it streams.
        for n in NAMES:
            self.stack.news_at(n, "/clear")
        wait_for(lambda: self.get("everywhere.mkv")[0] == 200, 30, "stream after the articles return")
        status, _, data = self.get("everywhere.mkv")
        self.assertEqual((status, sha256(data)), (200, sha256(FILES["everywhere.mkv"])))

    def test_3_430_everywhere_for_a_later_segment_cuts_the_response_after_headers(self):
        ids = self.ids("later.mkv")
        self.fault(NAMES, ids[2], missing=1)
        status, length, got = self.get_raw("later.mkv")
        self.assertEqual((status, length), (200, SIZE))
        self.assertLessEqual(len(got), 2 * SEG, "no byte of the missing segment or after it")
        self.assertEqual(got, FILES["later.mkv"][:len(got)])
        for n in NAMES:
            self.stack.news_at(n, "/clear")
        wait_for(lambda: self.get("later.mkv")[0] == 200, 30, "stream after the article returns")
        status, _, data = self.get("later.mkv")
        self.assertEqual((status, sha256(data)), (200, sha256(FILES["later.mkv"])))

    # -- hostile yEnc -----------------------------------------------------------------
    def _hostile(self, mode):
        name = f"{mode}.mkv"
        want = FILES[name]
        mid = self.ids(name)[2]
        kw = {"corrupt": 1} if mode == "corrupt" else {"yenc": mode}
        # Damaged on the whole alpha backbone, good on beta: 2 attempts on each
        # alpha provider (R7), then beta, and the stream is byte-exact.
        self.fault(ALPHA, mid, **kw)
        status, _, data = self.get(name, fe=1)
        self.assertEqual((status, sha256(data)), (200, sha256(want)), mode)
        self.assertEqual(self.body_counts(mid), {"alpha1": 2, "alpha2": 2, "beta": 1}, mode)
        # Damaged everywhere (through the other frontend, which has not cached
        # the good copy): the documented outcome for this kind of damage.
        for n in NAMES:
            self.stack.news_at(n, "/reset")
        self.fault(["beta"], mid, **kw)
        status, length, got = self.get_raw(name, fe=2)
        self.assertEqual(self.body_counts(mid), {"alpha1": 2, "alpha2": 2, "beta": 2}, mode)
        self.assertEqual((status, length), (200, SIZE), mode)
        if mode == "short_part":
            # Fewer bytes than the catalog's segment: the segment fails as
            # DATA_LOSS, the response is cut after headers before any of its bytes.
            self.assertLessEqual(len(got), 2 * SEG, mode)
            self.assertEqual(got, want[:len(got)], mode)
        elif mode == "corrupt":
            # Complete but unverified: served (R7), exactly one byte differs.
            self.assertEqual(len(got), SIZE)
            diff = [i for i in range(2 * SEG, 3 * SEG) if got[i] != want[i]]
            self.assertEqual(len(diff), 1, mode)
            self.assertEqual(got[:2 * SEG] + got[3 * SEG:], want[:2 * SEG] + want[3 * SEG:], mode)
        else:
            # The data is intact; only the trailer lies or is missing.
            self.assertEqual(sha256(got), sha256(want), mode)
        # Healed providers: the file streams byte-exact again from both frontends.
        for n in NAMES:
            self.stack.news_at(n, "/clear")
        for fe in (1, 2):
            status, _, data = self.get(name, fe=fe)
            self.assertEqual((status, sha256(data)), (200, sha256(want)), f"{mode} after healing, frontend {fe}")

    def test_4_short_part(self):
        self._hostile("short_part")

    def test_5_wrong_size(self):
        self._hostile("wrong_size")

    def test_6_missing_yend(self):
        self._hostile("no_yend")

    def test_7_crc_mismatch(self):
        self._hostile("corrupt")

    # -- a reply that never ends --------------------------------------------------------
    def test_8_never_ending_reply_is_cut_by_the_stall_timeout_and_its_connection_is_not_reused(self):
        s = self.stack
        mid = self.ids("endless.mkv")[2].decode()
        timeouts = {n: self.broker_metric(n, "timeout") for n in ALPHA}
        self.fault(ALPHA, mid, no_terminator=1)
        status, _, data = self.get("endless.mkv")
        self.assertEqual((status, sha256(data)), (200, sha256(FILES["endless.mkv"])))
        counts = self.body_counts(mid)
        # One GET reads the article through one frontend fetch, i.e. one broker
        # request: the frontend asks again only after a broker request failed
        # (FileReader, transient errors), and this one cannot fail: beta has
        # the article, and the frontend's fetch deadline (60 s) is far beyond
        # the four hung attempts (4 x stall_timeout). Within one request the
        # broker makes at most 2 attempts per provider (R3), and a hung reply
        # is a transient failure, so each alpha provider is asked exactly
        # twice before the backup, which is asked once. (A third attempt on an
        # alpha provider can only be a second broker request for the article.
        # It was seen once in nine runs: the retry after the first hung
        # attempt on alpha1's connection 1 was bound to alpha2, whose only
        # connection, also id 1, refused it as "the timed-out connection"
        # (R5), so it waited for the frontend's 60 s deadline and the
        # frontend's retry asked alpha1 twice more. Fixed in the broker; the
        # logs below show the wire times if it ever comes back.)
        if counts != {"alpha1": 2, "alpha2": 2, "beta": 1}:
            print("unexpected attempts:", counts, {n: s.news_at(n, "/log") for n in NAMES}, s.logs_tail())
        self.assertEqual(counts, {"alpha1": 2, "alpha2": 2, "beta": 1})
        for n in ALPHA:
            # Every reply that never ended was cut by the stall timeout.
            self.assertEqual(self.broker_metric(n, "timeout") - timeouts[n], counts[n], (n, counts))
            log = s.news_at(n, "/log")
            hung = [(i, conn, t) for i, (conn, verb, m, t) in enumerate(log) if verb == "BODY" and m == mid]
            self.assertEqual(len(hung), counts[n], n)
            for i, conn, t in hung:
                # Closed by the broker (the server sees it go) ...
                wait_for(lambda: conn not in s.news_at(n, "/connections"), 30,
                         f"{n}: connection {conn} closed after the stall")
                # ... and not reused: behind the reply that never ended only what
                # was already pipelined (pipeline_depth 2: at most one command),
                # sent before the stall timeout could have cut it.
                later = [e for e in s.news_at(n, "/log")[i + 1:] if e[0] == conn]
                self.assertLessEqual(len(later), 1, f"{n}: connection {conn} reused: {later}")
                for e in later:
                    self.assertLess(e[3] - t, STALL_TIMEOUT_S * 1000, f"{n}: connection {conn} reused: {later}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
