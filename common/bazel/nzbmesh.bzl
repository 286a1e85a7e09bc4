"""The project's rule macros: every C++ target goes through these so warning
flags, test defaults and code generation live in one place."""

# Warnings as errors for the project's own code. Generated code gets NZB_GEN_COPTS.
NZB_COPTS = [
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-unused-parameter",
    "-Wno-missing-field-initializers",
]

NZB_GEN_COPTS = ["-w"]

def _copts(copts):
    return NZB_COPTS + (copts or [])

def nzb_cc_library(name, copts = None, **kwargs):
    native.cc_library(name = name, copts = _copts(copts), **kwargs)

def nzb_cc_binary(name, copts = None, **kwargs):
    native.cc_binary(name = name, copts = _copts(copts), **kwargs)

def nzb_cc_test(name, copts = None, deps = None, size = "small", main = True, **kwargs):
    """A GoogleTest test. `main = False` when the test supplies its own main()."""
    deps = list(deps or [])
    deps.append("@system//:gtest_main" if main else "@system//:gtest")
    native.cc_test(name = name, copts = _copts(copts), deps = deps, size = size, **kwargs)

def nzb_cc_benchmark(name, copts = None, deps = None, tags = None, visibility = None, **kwargs):
    """A Google Benchmark binary. Tagged `benchmark`; run with `bazel run -c opt`.

    Visible to //tests/bench, whose `all` target runs every benchmark.
    """
    # Production's absl::Mutex mode (no deadlock graph), as the services run.
    deps = list(deps or []) + ["@system//:benchmark_main", "//common/service:release_mutexes"]
    native.cc_binary(
        name = name,
        copts = _copts(copts),
        deps = deps,
        tags = (tags or []) + ["benchmark"],
        visibility = visibility or ["//tests/bench:__pkg__"],
        **kwargs
    )

def nzb_cc_fuzzer(name, srcs, deps = None, smoke_runs = 20000, **kwargs):
    """A fuzz target: `LLVMFuzzerTestOneInput` in `srcs`.

    Under `--config=fuzz` `<name>` is a coverage-guided libFuzzer binary (run
    it by hand for long fuzzing). Otherwise it links a small deterministic
    driver, and `<name>_smoke` feeds it `smoke_runs` random and mutated inputs
    in every test run.
    """
    native.cc_binary(
        name = name,
        srcs = srcs,
        copts = _copts([]),
        deps = (deps or []) + select({
            "//common/bazel:libfuzzer": [],
            "//conditions:default": ["//common/bazel:fuzz_driver"],
        }),
        linkopts = select({
            "//common/bazel:libfuzzer": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        tags = ["fuzzer"],
        **kwargs
    )
    native.sh_test(
        name = name + "_smoke",
        srcs = ["//common/bazel:run_fuzz_smoke.sh"],
        args = ["$(location :%s)" % name, str(smoke_runs)],
        data = [":" + name],
        size = "medium",
    )

def nzb_grpc_library(name, srcs, deps = None, grpc = True):
    """Generates C++ for the protos in `srcs` (this package, rooted at //proto).

    Produces `<name>` (messages + gRPC stubs; include as
    "nzbmesh/<service>/v1/<file>.grpc.pb.h") and `<name>_mock` (gMock stubs from
    grpc_cpp_plugin's generate_mock_code, testonly).
    """
    pkg = native.package_name()
    if not pkg.startswith("proto/"):
        fail("nzb_grpc_library must live under //proto")
    bases = [s[:-len(".proto")] for s in srcs]
    pb = [b + ".pb.h" for b in bases] + [b + ".pb.cc" for b in bases]
    grpc_outs = []
    mocks = []
    if grpc:
        grpc_outs = [b + ".grpc.pb.h" for b in bases] + [b + ".grpc.pb.cc" for b in bases]
        mocks = [b + "_mock.grpc.pb.h" for b in bases]
    cmd = "/usr/bin/protoc -Iproto --cpp_out=$(GENDIR)/proto"
    if grpc:
        cmd += " --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin --grpc_out=generate_mock_code=true:$(GENDIR)/proto"
    cmd += " " + " ".join(["%s/%s" % (pkg, s) for s in srcs])
    native.genrule(
        name = name + "_codegen",
        srcs = srcs + [d + "_srcs" for d in (deps or [])],
        outs = pb + grpc_outs + mocks,
        cmd = cmd,
    )
    native.filegroup(name = name + "_srcs", srcs = srcs + [d + "_srcs" for d in (deps or [])], visibility = ["//visibility:public"])
    native.cc_library(
        name = name,
        srcs = [f for f in pb + grpc_outs if f.endswith(".cc")],
        hdrs = [f for f in pb + grpc_outs if f.endswith(".h")],
        strip_include_prefix = "/proto",
        copts = NZB_GEN_COPTS,
        deps = (deps or []) + ["@system//:grpc", "@system//:protobuf"],
        visibility = ["//visibility:public"],
    )
    if grpc:
        native.cc_library(
            name = name + "_mock",
            hdrs = mocks,
            strip_include_prefix = "/proto",
            deps = [":" + name, "@system//:gtest"],
            testonly = True,
            visibility = ["//visibility:public"],
        )
