#!/usr/bin/python3
"""Import an NZB into nzbmesh from Python, over the importer's gRPC API.

  nzbmesh_client.py --importer 127.0.0.1:50052 FILE.nzb [--category C]

1. Importer.SubmitNzb   stores the NZB and queues a job,
2. Importer.GetJob      polled until the job is COMPLETED/FAILED/CANCELLED,
3. Catalog.Stat / ListDirectory   show the release the job created.

Needs Debian's python3-grpcio, python3-grpc-tools and python3-protobuf. The
Python stubs are generated from proto/ at start-up into a temporary folder
(nothing generated is committed); pass --stubs DIR to use stubs made once with
generate.sh instead.

Progress goes to stderr; stdout is the result: the job, then the release and
one line per directory and file in it:

  job 1 COMPLETED
  release /movies/plain.mkv
  file /movies/plain.mkv/plain.mkv 3157073 HEALTHY

Exit codes (the same as nzbmeshctl's): 0 imported, 2 usage, 3 not found,
4 importer unavailable or too slow, 5 the job ended FAILED or CANCELLED.
"""
import argparse
import importlib
import os
import shutil
import sys
import tempfile
import time

import grpc

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_UNAVAILABLE, EXIT_JOB_FAILED = 0, 1, 2, 3, 4, 5
PROTOS = ["nzbmesh/importer/v1/importer.proto", "nzbmesh/importer/v1/catalog.proto"]
DEFAULT_PROTO_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "proto")


class Failure(Exception):
    """A message for the user and the exit code that goes with it."""

    def __init__(self, message, code=EXIT_ERROR):
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------- stubs
def generate_stubs(proto_root, out_dir):
    """Runs protoc (from grpc_tools) over the importer and catalog protos."""
    from grpc_tools import protoc  # python3-grpc-tools
    for p in PROTOS:
        if not os.path.exists(os.path.join(proto_root, p)):
            raise Failure(f"{p} not found under {proto_root} (pass --proto DIR)", EXIT_USAGE)
    argv = ["grpc_tools.protoc", f"-I{proto_root}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}"]
    if protoc.main(argv + PROTOS) != 0:
        raise Failure("protoc could not compile " + ", ".join(PROTOS))


def load_stubs(stubs_dir):
    """Imports the generated modules: (importer_pb2, importer_pb2_grpc, catalog_pb2, catalog_pb2_grpc)."""
    sys.path.insert(0, stubs_dir)
    return [importlib.import_module(f"nzbmesh.importer.v1.{m}")
            for m in ("importer_pb2", "importer_pb2_grpc", "catalog_pb2", "catalog_pb2_grpc")]


# --------------------------------------------------------------------- client
class ImporterClient:
    def __init__(self, address, stubs, rpc_timeout):
        self.address, self.rpc_timeout = address, rpc_timeout
        self.pb, importer_grpc, self.catalog_pb, catalog_grpc = stubs
        self.channel = grpc.insecure_channel(address)
        self.importer = importer_grpc.ImporterStub(self.channel)
        self.catalog = catalog_grpc.CatalogStub(self.channel)

    def close(self):
        self.channel.close()

    def call(self, method, request, what):
        """One unary call with a deadline; gRPC errors become Failures that name the importer."""
        try:
            return method(request, timeout=self.rpc_timeout)
        except grpc.RpcError as e:
            code = e.code()
            if code == grpc.StatusCode.UNAVAILABLE:
                raise Failure(f"the importer at {self.address} is unavailable ({e.details()}); "
                              f"is it running? (--importer HOST:PORT)", EXIT_UNAVAILABLE)
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise Failure(f"the importer at {self.address} did not answer {what} within "
                              f"{self.rpc_timeout:g}s", EXIT_UNAVAILABLE)
            if code == grpc.StatusCode.NOT_FOUND:
                raise Failure(f"{what}: not found: {e.details()}", EXIT_NOT_FOUND)
            raise Failure(f"{what} failed at the importer ({self.address}): {code.name}: {e.details()}")

    def submit(self, nzb_path, category, name):
        with open(nzb_path, "rb") as f:
            data = f.read()
        req = self.pb.SubmitNzbRequest(nzb=data, filename=os.path.basename(nzb_path), category=category, name=name)
        return self.call(self.importer.SubmitNzb, req, "SubmitNzb")

    def wait(self, job_id, deadline_s, poll_s=0.5):
        """Polls GetJob until the job is finished or deadline_s has passed; returns the Job."""
        terminal = {self.pb.COMPLETED, self.pb.FAILED, self.pb.CANCELLED}
        deadline = time.monotonic() + deadline_s
        last = None
        while True:
            job = self.call(self.importer.GetJob, self.pb.GetJobRequest(job_id=job_id), f"GetJob {job_id}")
            line = f"job {job_id}: {self.pb.JobState.Name(job.state)}"
            if job.state == self.pb.RUNNING:
                line += f" {job.progress:.0%}"
            if line != last:
                print(line, file=sys.stderr)
                last = line
            if job.state in terminal:
                return job
            if time.monotonic() > deadline:
                raise Failure(f"job {job_id} is still {self.pb.JobState.Name(job.state)} after {deadline_s:g}s "
                              f"(raise --wait-timeout)", EXIT_UNAVAILABLE)
            time.sleep(poll_s)

    def stat(self, path):
        return self.call(self.catalog.Stat, self.catalog_pb.StatRequest(path=path), f"Stat {path}")

    def list_directory(self, path):
        resp = self.call(self.catalog.ListDirectory, self.catalog_pb.ListDirectoryRequest(path=path),
                         f"ListDirectory {path}")
        return list(resp.entries)


def print_release(client, path):
    """Prints the release and every file below it (recursively)."""
    entry = client.stat(path)
    health = client.catalog_pb.Health.Name

    def show(e):
        if e.directory:
            print(f"dir {e.path}")
            for child in client.list_directory(e.path):
                show(child)
        else:
            print(f"file {e.path} {e.size} {health(e.health)}")

    print(f"release {entry.path}")
    if entry.directory:
        for child in client.list_directory(entry.path):
            show(child)
    else:
        show(entry)


# ----------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description="Submit an NZB to the nzbmesh importer, wait, list the release.")
    ap.add_argument("nzb", metavar="FILE.nzb")
    ap.add_argument("--importer", default="127.0.0.1:50052", help="importer gRPC address (default %(default)s)")
    ap.add_argument("--category", default="", help='catalog category (default: the importer\'s "default")')
    ap.add_argument("--name", default="", help="release name (default: from the file name)")
    ap.add_argument("--timeout", type=float, default=10, help="deadline of each call, seconds (default %(default)s)")
    ap.add_argument("--wait-timeout", type=float, default=300,
                    help="how long to wait for the job, seconds (default %(default)s)")
    ap.add_argument("--proto", default=DEFAULT_PROTO_ROOT, help="the repository's proto/ folder")
    ap.add_argument("--stubs", help="use stubs generated by generate.sh in this folder instead of generating them")
    a = ap.parse_args(argv)
    if not os.path.isfile(a.nzb):
        print(f"nzbmesh_client: cannot read {a.nzb}", file=sys.stderr)
        return EXIT_NOT_FOUND

    tmp = None
    try:
        if a.stubs:
            stubs_dir = a.stubs
        else:
            stubs_dir = tmp = tempfile.mkdtemp(prefix="nzbmesh-stubs-")
            generate_stubs(os.path.abspath(a.proto), tmp)
        client = ImporterClient(a.importer, load_stubs(stubs_dir), a.timeout)
        try:
            resp = client.submit(a.nzb, a.category, a.name)
            print(f"job {resp.job_id}" + (" (already imported: existing job)" if resp.duplicate else " queued"),
                  file=sys.stderr)
            job = client.wait(resp.job_id, a.wait_timeout)
            if job.state != client.pb.COMPLETED:
                reason = client.pb.FailureReason.Name(job.failure_reason)
                print(f"nzbmesh_client: job {job.job_id} ended {client.pb.JobState.Name(job.state)}: "
                      f"{reason} {job.message}", file=sys.stderr)
                return EXIT_JOB_FAILED
            print(f"job {job.job_id} {client.pb.JobState.Name(job.state)}")
            print_release(client, job.catalog_path)
        finally:
            client.close()
    except Failure as f:
        print(f"nzbmesh_client: {f}", file=sys.stderr)
        return f.code
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
