"""e2e_python_test: a Python suite over the real nzbmesh processes (stack.py)."""

# Everything stack.Stack starts.
STACK = [
    "stack.py",
    "//services/broker",
    "//services/ctl:nzbmeshctl",
    "//services/frontend",
    "//services/importer",
    "//services/speedtest",
    "//tests/fakes/nntp_server:nntp_testserver",
]

def e2e_python_test(name, data = None, size = "large", tags = None):
    """Runs <name>.py with run_python_test.sh; needs NZBMESH_PG_URL (test.sh)."""
    native.sh_test(
        name = name,
        size = size,
        srcs = ["run_python_test.sh"],
        args = [name + ".py"],
        data = [name + ".py"] + STACK + (data or []),
        tags = tags or ["e2e"],
    )
