"""The Python gRPC client example (docs/examples/python) against the real services.

Runs docs/examples/python/nzbmesh_client.py as a user would — Debian's
/usr/bin/python3 with python3-grpcio and python3-grpc-tools, stubs generated
from proto/ at start-up — against the local stack, so the example cannot rot:
it must submit an NZB, wait for the job, and list the release and its file with
the right size; a second submission is reported as a duplicate; a down importer
gives exit code 4 and a message naming the address.
"""
import os
import random
import subprocess
import sys
import unittest
import urllib.parse

from stack import Stack, free_port, runfile, sha256

PYTHON = "/usr/bin/python3"
RELEASE = "python.client.release.mkv"
PAYLOAD = random.Random(20261207).randbytes(700 * 1024 + 321)  # three 256 KiB articles


def client(*args, timeout=120):
    argv = [PYTHON, runfile("docs/examples/python/nzbmesh_client.py")] + list(args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


class PythonClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        r = subprocess.run([PYTHON, "-c", "import grpc, grpc_tools.protoc, google.protobuf"], capture_output=True)
        if r.returncode != 0:
            raise AssertionError("Debian python3-grpcio/python3-grpc-tools/python3-protobuf missing "
                                 "(deploy/local/install-deps.sh):\n" + r.stderr.decode())
        cls.stack = Stack({RELEASE: PAYLOAD})
        cls.stack.start_or_dump()

    @classmethod
    def tearDownClass(cls):
        cls.stack.stop()

    def importer(self):
        return f"127.0.0.1:{self.stack.ports['imp1']}"

    def test_1_submit_wait_list(self):
        s = self.stack
        r = client("--importer", self.importer(), "--category", "pyclient", s.nzb_path(RELEASE))
        self.assertEqual(r.returncode, 0, f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}\n{s.logs_tail()}")
        print(f"\n--- nzbmesh_client.py stderr\n{r.stderr}--- stdout\n{r.stdout}", end="")
        lines = r.stdout.splitlines()
        self.assertRegex(lines[0], r"^job \d+ COMPLETED$", r.stdout)
        self.assertEqual(lines[1], f"release /pyclient/{RELEASE}", r.stdout)
        files = [l.split() for l in lines if l.startswith("file ")]
        self.assertEqual(len(files), 1, r.stdout)
        _, path, size, health = files[0]
        self.assertTrue(path.startswith(f"/pyclient/{RELEASE}/") and path.endswith(RELEASE), r.stdout)
        self.assertEqual(int(size), len(PAYLOAD), r.stdout)
        self.assertIn(health, ("HEALTH_UNSPECIFIED", "HEALTHY"), r.stdout)
        self.assertIn("COMPLETED", r.stderr)  # progress went to stderr
        # What the client listed is what a player gets.
        status, _, body = s.http(1, "GET", urllib.parse.quote("/dav" + path))
        self.assertEqual(status, 200)
        self.assertEqual(sha256(body), sha256(PAYLOAD))

    def test_2_resubmit_is_duplicate(self):
        r = client("--importer", self.importer(), "--category", "pyclient", self.stack.nzb_path(RELEASE))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("already imported", r.stderr)
        self.assertIn(f"release /pyclient/{RELEASE}", r.stdout)

    def test_3_importer_down_is_a_clear_error(self):
        down = f"127.0.0.1:{free_port()}"
        r = client("--importer", down, "--timeout", "5", self.stack.nzb_path(RELEASE), timeout=60)
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertIn(f"the importer at {down} is unavailable", r.stderr)

    def test_4_missing_file_and_usage(self):
        r = client("--importer", self.importer(), "/nonexistent/x.nzb")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("cannot read /nonexistent/x.nzb", r.stderr)
        r = client()
        self.assertEqual(r.returncode, 2, r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
