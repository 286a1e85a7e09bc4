"""Soak: the whole system under mixed load with Plex-like scrubbing.

Runs for NZBMESH_SOAK_MINUTES (default 20). After a warm-up (the first
quarter), every process's memory, threads and file descriptors, the news
server's open connections and its dial rate must stay flat. Prints a table of
the samples. Run: bazel test //tests/e2e:soak_test (tagged manual).
"""
import http.client
import os
import random
import threading
import time
import unittest
import urllib.parse

from stack import Stack, sha256

RNG = random.Random(7)
MOVIE = bytes(RNG.getrandbits(8) for _ in range(24 * 1024 * 1024))
EXTRAS = {f"extra{i}.mkv": bytes(RNG.getrandbits(8) for _ in range(512 * 1024 + i)) for i in range(12)}


def proc_stats(pid):
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) // 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads, len(os.listdir(f"/proc/{pid}/fd"))


class Soak(unittest.TestCase):
    def test_soak_everything_stays_flat(self):
        minutes = float(os.environ.get("NZBMESH_SOAK_MINUTES", "20"))
        stack = Stack(dict({"movie.mkv": MOVIE}, **EXTRAS)).start()
        stop = threading.Event()
        errors = []
        try:
            r = stack.ctl("import", stack.nzb_path("movie.mkv"), "--category", "movies", "--wait", timeout=600)
            del r
            [(href, _)] = [f for f in stack.find_files(1, "/dav/movies/") if f[0].endswith("movie.mkv")]
            stack.news("/fault?latency_ms=15&bytes_per_second=30000000")

            def player(i):
                while not stop.is_set():
                    status, _, data = stack.http(1 + i % 2, "GET", urllib.parse.quote(href), timeout=300)
                    if status != 200 or sha256(data) != sha256(MOVIE):
                        errors.append(f"player {i}: {status}")

            def scrubber(i):
                rng = random.Random(i)
                while not stop.is_set():
                    # Bursts of seeks: open a range, read a little, abandon it.
                    conn = http.client.HTTPConnection("127.0.0.1", stack.ports[f"fe{1 + i % 2}"], timeout=30)
                    start = rng.randrange(len(MOVIE))
                    want = rng.randrange(1, 300000)
                    headers = dict(stack.auth_header(), Range=f"bytes={start}-")
                    phase = "request"
                    t0 = time.time()
                    try:
                        conn.request("GET", urllib.parse.quote(href), headers=headers)
                        phase = "headers"
                        resp = conn.getresponse()
                        phase = "body"
                        got = resp.read(want)
                        if got != MOVIE[start:start + want]:
                            errors.append(f"scrubber {i}: wrong bytes at {start} (+{len(got)})")
                    except Exception as e:  # counted: scrubbing must never see errors
                        errors.append(f"scrubber {i}: {e} in {phase} of bytes={start}- (+{want}), "
                                      f"{time.strftime('%H:%M:%S', time.gmtime(t0))} UTC")
                        streams = stack.ctl("streams", check=False).stdout.decode(errors="replace")
                        pool = stack.ctl("pool", check=False).stdout.decode(errors="replace")
                        print(f"scrubber {i} failed; streams: {streams}\nbroker pool: {pool}")
                    conn.close()
                    time.sleep(rng.uniform(0.05, 0.3))

            def importer():
                names = list(EXTRAS)
                i = 0
                while not stop.is_set() and i < len(names):
                    stack.ctl("import", stack.nzb_path(names[i]), "--category", "extras", "--wait",
                              check=False, timeout=600)
                    i += 1
                    stop.wait(minutes * 60 / (2 * len(names)))

            def speedtests():
                while not stop.wait(60):
                    stack.ctl("speedtest", "e2e", check=False, timeout=120)

            threads = [threading.Thread(target=player, args=(i,)) for i in range(2)]
            threads += [threading.Thread(target=scrubber, args=(i,)) for i in range(4)]
            threads += [threading.Thread(target=importer), threading.Thread(target=speedtests)]
            for t in threads:
                t.start()
            samples = []
            end = time.time() + minutes * 60
            names = [n for n in stack.procs if n != "nntp"]
            while time.time() < end:
                row = {"t": round(time.time() - (end - minutes * 60))}
                for n in names:
                    row[n] = proc_stats(stack.procs[n].proc.pid)
                row["news"] = stack.news("/stats")
                samples.append(row)
                time.sleep(max(5.0, minutes * 60 / 40))
            stop.set()
            for t in threads:
                t.join(600)
            print_table(samples, names)
            steady = samples[len(samples) // 4:]
            if errors:
                print(stack.logs_tail())
            self.assertEqual(errors, [])
            for n in names:
                rss = [s[n][0] for s in steady]
                thr = [s[n][1] for s in steady]
                fds = [s[n][2] for s in steady]
                self.assertLessEqual(max(rss), min(rss) * 1.25 + 32, f"{n} memory grows: {rss}")
                self.assertLessEqual(max(thr) - min(thr), 8, f"{n} threads grow: {thr}")
                self.assertLessEqual(max(fds) - min(fds), 16, f"{n} fds grow: {fds}")
            dials = [s["news"]["connections_accepted"] for s in steady]
            self.assertLessEqual(dials[-1] - dials[0], 2 * len(steady), f"dial rate not flat: {dials}")
            self.assertLessEqual(steady[-1]["news"]["max_concurrent_connections"], Stack.MAX_CONNECTIONS)
        finally:
            stop.set()
            stack.stop()


def print_table(samples, names):
    print("\nt(s) " + " ".join(f"{n}(rssMB/thr/fd)".rjust(24) for n in names) + "  news(open/dials)")
    for s in samples:
        cols = " ".join(f"{s[n][0]}/{s[n][1]}/{s[n][2]}".rjust(24) for n in names)
        print(f"{s['t']:5d} {cols}  {s['news']['current_connections']}/{s['news']['connections_accepted']}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
