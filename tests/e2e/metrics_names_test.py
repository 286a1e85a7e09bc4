"""Every metric the Prometheus rules and the Grafana dashboard use is exported
by the running services (issue 8: "a test checks the dashboard's and rules'
metric names against a live /metrics scrape of the running stack").

Starts the real stack, exercises it once (an import, streams and a range read
through both frontends, a 404, a short speed test) so that labelled series
exist — families without a series are not in a scrape at all — then:

- runs tests/deploy/metric_names_check.py in live mode (NZBMESH_METRICS_URLS)
  against the broker's, an importer's, a frontend's and the speed-test
  service's /metrics, and requires it to pass;
- checks tests/deploy/testdata/exported_metrics.txt (what the offline
  //tests/deploy:observability_test trusts, labels included) against the same
  scrape: every family listed there that is live has the listed type and
  exactly the listed label names, and every listed family is live.
"""
import glob
import json
import os
import random
import re
import subprocess
import unittest
import urllib.parse
import urllib.request

from stack import Stack, runfile, sha256

PYTHON = "/usr/bin/python3"  # has python3-yaml, which the checker needs
RELEASE = "metrics.release.mkv"
PAYLOAD = random.Random(20261208).randbytes(600 * 1024 + 77)
SCRAPED = ("broker_m", "imp1_m", "fe1_m", "st_m")


class SpeedTestStack(Stack):
    """The stack with test articles for the speed-test service (the release's
    NZB), so a speed test succeeds and its per-provider series exist."""

    def write_config(self):
        super().write_config()
        sections = re.findall(r"^(\w+):$", self.config_template, re.M)
        assert sections[-1] == "speedtest", f"speedtest is no longer the last section: {sections}"
        self.config_template = self.config_template.rstrip("\n") + f"\n  default_nzb: {self.nzb_path(RELEASE)}\n"


def exercise(s):
    r = s.ctl("import", s.nzb_path(RELEASE), "--category", "metrics", "--wait", timeout=120)
    assert json.loads(r.stdout).get("state") == "COMPLETED", r.stdout
    files = [h for h, _ in s.find_files(1, "/dav/metrics/") if h.endswith(RELEASE)]
    assert len(files) == 1, files
    href = urllib.parse.quote(files[0])
    for fe in (1, 2):
        status, _, body = s.http(fe, "GET", href)
        assert (status, sha256(body)) == (200, sha256(PAYLOAD)), status
        status, _, body = s.http(fe, "GET", href, headers={"Range": "bytes=300000-300099"})
        assert (status, body) == (206, PAYLOAD[300000:300100]), status
    assert s.http(1, "GET", "/dav/no/such/file")[0] == 404
    r = s.ctl("speedtest", "e2e", "--duration", "1s", "--bytes", "2000000", "--force", timeout=60)
    assert int(json.loads(r.stdout).get("bytes", 0)) > 0, r.stdout


def scrape(url):
    """{family: (type, {label names})} from one /metrics page."""
    fams = {}
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split()
            fams[name] = (typ, set())
        elif line and not line.startswith("#"):
            m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s", line)
            name = m.group(1)
            fam = name if name in fams else re.sub(r"_(bucket|sum|count)$", "", name)
            labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(2) or "")) - {"le"}
            fams.setdefault(fam, ("untyped", set()))[1].update(labels)
    return fams


class MetricNames(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stack = SpeedTestStack({RELEASE: PAYLOAD})
        cls.stack.start_or_dump(then=lambda: exercise(cls.stack))
        cls.urls = [f"http://127.0.0.1:{cls.stack.ports[k]}/metrics" for k in SCRAPED]

    @classmethod
    def tearDownClass(cls):
        cls.stack.stop()

    def test_dashboard_and_rules_names_are_live(self):
        obs = runfile("deploy/observability")
        rules = sorted(glob.glob(os.path.join(obs, "prometheus", "rules", "*.yml")))
        dashboards = sorted(glob.glob(os.path.join(obs, "grafana", "dashboards", "*.json")))
        self.assertTrue(rules and dashboards, f"no rules or dashboards under {obs}")
        argv = [PYTHON, runfile("tests/deploy/metric_names_check.py"),
                "--exported", runfile("tests/deploy/testdata/exported_metrics.txt"),
                "--rules", *rules, "--dashboard", *dashboards]
        r = subprocess.run(argv, env=dict(os.environ, NZBMESH_METRICS_URLS=",".join(self.urls)),
                           capture_output=True, text=True, timeout=60)
        print(r.stdout, r.stderr)
        self.assertIn("live scrape:", r.stdout, "the checker did not run in live mode")
        self.assertEqual(r.returncode, 0, f"rules/dashboard use metrics the running services do not export:\n"
                                          f"{r.stdout}{r.stderr}")

    def test_exported_list_matches_live_scrape(self):
        live = {}
        for url in self.urls:
            live.update(scrape(url))
        listed = {}
        with open(runfile("tests/deploy/testdata/exported_metrics.txt")) as f:
            for line in f:
                parts = line.split("#", 1)[0].split()
                if parts:
                    listed[parts[0]] = (parts[1], set(parts[2].split(",")) if len(parts) > 2 else set())
        problems = []
        for name, (typ, labels) in sorted(listed.items()):
            if name not in live:
                problems.append(f"{name}: listed in exported_metrics.txt, not in the live scrape")
            elif live[name] != (typ, labels):
                problems.append(f"{name}: exported_metrics.txt says {typ} {sorted(labels)}, "
                                f"the services export {live[name][0]} {sorted(live[name][1])}")
        unlisted = sorted(n for n in live if n.startswith("nzbmesh_") and n not in listed)
        print(f"{len(live)} live families; not in exported_metrics.txt (allowed): {unlisted}")
        if problems:
            self.fail("exported_metrics.txt does not match the running services:\n" + "\n".join(problems))


if __name__ == "__main__":
    unittest.main(verbosity=2)
