"""Repository rule that turns Debian's pkg-config data into @system//:<lib>.

Each entry maps a target name to the pkg-config modules (and extra link flags)
it stands for. `-D` flags become `defines`, `-I` directories are symlinked into
the repository and exported with `includes`, link flags become `linkopts`.
BUILD files then name dependencies (`@system//:grpc`), never flags.
"""

_LIBS = {
    # name: (pkg-config modules, extra linkopts, deps on other entries)
    "absl": ([
        "absl_base",
        "absl_status",
        "absl_statusor",
        "absl_strings",
        "absl_str_format",
        "absl_synchronization",
        "absl_time",
        "absl_flags",
        "absl_flags_parse",
        "absl_hash",
        "absl_raw_hash_set",
        "absl_random_random",
        "absl_cleanup",
        "absl_span",
        "absl_function_ref",
        "absl_inlined_vector",
        "absl_optional",
        "absl_variant",
    ], [], []),
    "protobuf": (["protobuf"], [], []),
    "grpc": (["grpc++"], ["-lgrpc++_reflection"], ["protobuf", "absl"]),
    "pqxx": (["libpqxx", "libpq"], [], []),
    "isal": (["libisal"], [], []),
    "pugixml": (["pugixml"], [], []),
    "yaml_cpp": (["yaml-cpp"], [], []),
    "openssl": (["openssl"], [], []),
    "gtest": (["gmock", "gtest"], [], []),
    "gtest_main": (["gmock_main"], [], ["gtest"]),
    "benchmark": (["benchmark"], ["-lpthread"], []),
    "benchmark_main": (["benchmark"], ["-lbenchmark_main", "-lpthread"], ["benchmark"]),
    # Header-only Boost (Asio, Beast) needs only pthreads.
    "boost": ([], ["-lpthread"], []),
}

def _pkg_config(ctx, args):
    res = ctx.execute(["pkg-config"] + args)
    if res.return_code != 0:
        fail("pkg-config %s failed: %s\nRun ./deploy/local/install-deps.sh first." % (" ".join(args), res.stderr))
    return res.stdout.strip().split(" ") if res.stdout.strip() else []

def _system_libs_impl(ctx):
    build = ['package(default_visibility = ["//visibility:public"])', ""]
    include_links = {}
    for name, (modules, extra, deps) in _LIBS.items():
        defines = []
        includes = []
        linkopts = []
        if modules:
            for flag in _pkg_config(ctx, ["--cflags"] + modules):
                if flag.startswith("-D"):
                    defines.append(flag[2:])
                elif flag.startswith("-I"):
                    d = flag[2:]
                    if d not in include_links:
                        link = "isystem/%d" % len(include_links)
                        ctx.symlink(d, link)
                        include_links[d] = link
                    includes.append(include_links[d])
            linkopts = _pkg_config(ctx, ["--libs"] + modules)
        linkopts = linkopts + extra
        build.append("cc_library(")
        build.append('    name = "%s",' % name)
        if includes:
            build.append("    hdrs = glob([%s]),"  % ", ".join(['"%s/**"' % i for i in includes]))
            build.append("    includes = %s," % repr(includes))
        build.append("    defines = %s," % repr(sorted({d: 1 for d in defines}.keys())))
        build.append("    linkopts = %s," % repr(linkopts))
        build.append("    deps = %s," % repr([":" + d for d in deps]))
        build.append(")")
        build.append("")
    ctx.file("WORKSPACE", 'workspace(name = "%s")\n' % ctx.name)
    ctx.file("BUILD.bazel", "\n".join(build))

system_libs = repository_rule(
    implementation = _system_libs_impl,
    local = True,
    environ = ["PKG_CONFIG_PATH"],
    doc = "Generates cc_library targets for Debian system libraries from pkg-config.",
)
