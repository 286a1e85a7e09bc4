#!/usr/bin/env python3
"""Lints deploy/docker without a Docker engine.

  docker_lint_check.py REPO_ROOT

Dockerfile: base images pinned (no latest), the build stage runs
deploy/local/install-deps.sh and `bazel build -c opt` of every service like CI,
every repository path it names exists, the runtime stage installs only
packages that exist in Debian (apt-cache / dpkg) and covers every shared
library the binaries link (derived from common/bazel/system_libs.bzl through
pkg-config and dpkg -S), and runs as a non-root numeric USER.
compose.yaml: pinned images, hardened nzbmesh services, secrets only by
${VAR} interpolation, every *_env of its nzbmesh.yaml set on its service.
"""
import ast
import os
import re
import shlex
import subprocess
import sys

import yaml

SERVICES = ["broker", "importer", "frontend", "speedtest"]
TEST_ONLY_LIBS = {"gtest", "gtest_main", "benchmark", "benchmark_main"}
BASE_IMAGE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}
SENSITIVE = re.compile(r"PASSWORD|SECRET|TOKEN|API_?KEY|DATABASE_URL", re.I)

errors = []


def err(msg):
    errors.append(msg)


def stages(text):
    """[(from_line, name, [instructions])] with continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    args = {}
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "ARG" and not out:
            k, _, v = rest.partition("=")
            args[k.strip()] = v.strip()
        if word == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            image = re.sub(r"\$\{(\w+)\}", lambda g: args.get(g.group(1), g.group(0)), m.group(1))
            out.append((image, m.group(2), []))
        elif out:
            out[-1][2].append((word, rest))
    return out


def pinned(image):
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    return ":" in last and last.rsplit(":", 1)[1] not in ("", "latest") and "$" not in image


def apt_exists(pkg):
    ok = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    if ok.returncode == 0 and "install ok installed" in ok.stdout:
        return True
    show = subprocess.run(["apt-cache", "show", "--no-all-versions", pkg], capture_output=True, text=True)
    return show.returncode == 0 and "Package:" in show.stdout


def linked_packages(root):
    """Debian packages holding the shared libraries @system//:<lib> links."""
    src = open(os.path.join(root, "common/bazel/system_libs.bzl")).read()
    m = re.search(r"^_LIBS = (\{.*?^\})", src, re.S | re.M)
    libs = ast.literal_eval(m.group(1))
    flags = set()
    for name, (modules, extra, _) in libs.items():
        if name in TEST_ONLY_LIBS:
            continue
        if modules:
            r = subprocess.run(["pkg-config", "--libs"] + modules, capture_output=True, text=True)
            if r.returncode != 0:
                err(f"pkg-config --libs {' '.join(modules)} failed (run deploy/local/install-deps.sh): {r.stderr.strip()}")
                continue
            flags |= set(r.stdout.split())
        flags |= set(extra)
    # The linker's search path, in order (what `gcc -print-file-name` walks).
    out = subprocess.run(["gcc", "-print-search-dirs"], capture_output=True, text=True).stdout
    line = next((l for l in out.splitlines() if l.startswith("libraries: =")), "libraries: =")
    search_dirs = [os.path.normpath(d) for d in line[len("libraries: ="):].split(":") if d]
    reals = {}
    for f in sorted(flags):
        if not f.startswith("-l"):
            continue
        lib = f[2:]
        path = next((os.path.join(d, "lib%s.so" % lib) for d in search_dirs
                     if os.path.exists(os.path.join(d, "lib%s.so" % lib))), None)
        if path is None:
            continue  # static-only or part of libc (e.g. -lrt): nothing to ship
        reals[os.path.realpath(path)] = lib
    # One dpkg -S for all; usrmerge means dpkg may record /lib/... for a file
    # found under /usr/lib/..., so ask for both spellings (exact paths: fast).
    candidates = set(reals) | {p[len("/usr"):] for p in reals if p.startswith("/usr/")}
    r = subprocess.run(["dpkg", "-S"] + sorted(candidates), capture_output=True, text=True)
    owner = {}
    for line in r.stdout.splitlines():
        pkg, _, path = line.partition(": ")
        owner[os.path.basename(path)] = pkg.split(":")[0].split(",")[0].strip()
    pkgs = {}
    for real, lib in sorted(reals.items()):
        pkg = owner.get(os.path.basename(real))
        if pkg is None:
            err(f"-l{lib}: cannot find the Debian package of {real}")
            continue
        pkgs.setdefault(pkg, []).append(lib)
    return pkgs


def check_dockerfile(root):
    path = os.path.join(root, "deploy/docker/Dockerfile")
    text = open(path).read()
    st = stages(text)
    if len(st) < 2:
        err("Dockerfile: want a multi-stage build (build + runtime)")
        return
    for image, name, _ in st:
        if not pinned(image):
            err(f"Dockerfile: FROM {image} ({name}) is not pinned to an explicit tag or digest")
        if not re.match(r"(docker\.io/(library/)?)?debian:(12|bookworm)", image):
            err(f"Dockerfile: FROM {image} is not Debian 12")
    build = next((s for s in st if s[1] == "build"), None)
    runtime = st[-1]
    if build is None:
        err("Dockerfile: no stage named build")
        return
    run_text = " ".join(rest for word, rest in build[2] if word == "RUN")
    if "deploy/local/install-deps.sh" not in run_text:
        err("Dockerfile: the build stage does not run deploy/local/install-deps.sh (CI's dependency script)")
    if not re.search(r"bazel build -c opt", run_text):
        err("Dockerfile: the build stage does not run `bazel build -c opt` like CI")
    for s in SERVICES:
        if f"//services/{s}:{s}" not in run_text and "//services/..." not in run_text:
            err(f"Dockerfile: the build stage does not build //services/{s}:{s}")
    # Every repository path named in COPY (non --from) or RUN exists.
    for image, name, instrs in st:
        for word, rest in instrs:
            if word in ("COPY", "ADD") and "--from" not in rest:
                srcs = [a for a in shlex.split(rest) if not a.startswith("--")][:-1]
                for s in srcs:
                    if s != "." and not os.path.exists(os.path.join(root, s)):
                        err(f"Dockerfile: {word} source {s} does not exist in the repository")
            if word == "RUN":
                for p in re.findall(r"(?:\./)?((?:deploy|tests|common|services|tools)/[\w./-]+\.(?:sh|py))", rest):
                    if not os.path.exists(os.path.join(root, p)):
                        err(f"Dockerfile: RUN calls {p}, which does not exist in the repository")
    # Runtime stage.
    rt_runs = [rest for word, rest in runtime[2] if word == "RUN"]
    pkgs = []
    for r in rt_runs:
        m = re.search(r"apt-get install\s+(.*?)(?:&&|$)", r)
        if m:
            pkgs += [p for p in m.group(1).split() if not p.startswith("-")]
    if not pkgs:
        err("Dockerfile: the runtime stage installs no packages")
    for p in pkgs:
        if not apt_exists(p):
            err(f"Dockerfile: runtime package {p} is not a Debian package (apt-cache show / dpkg found nothing)")
        if p.endswith("-dev") or p in ("bazel-bootstrap", "g++", "gcc", "build-essential"):
            err(f"Dockerfile: runtime stage installs build package {p}")
    needed = linked_packages(root)
    for pkg, libs in sorted(needed.items()):
        if pkg in BASE_IMAGE_PACKAGES:
            continue
        if pkg not in pkgs:
            err(f"Dockerfile: runtime stage lacks {pkg} (provides -l{', -l'.join(libs)} the services link)")
    users = [rest.strip() for word, rest in runtime[2] if word == "USER"]
    if not users:
        err("Dockerfile: runtime stage has no USER")
    else:
        u = users[-1].split(":")[0]
        if not u.isdigit() or u == "0":
            err(f"Dockerfile: runtime USER {users[-1]} must be a non-zero numeric uid (runAsNonRoot checks it)")
    if not any(w == "ENTRYPOINT" for w, _ in runtime[2]):
        err("Dockerfile: runtime stage has no ENTRYPOINT")
    if "ARG SERVICE" not in text:
        err("Dockerfile: no build-arg SERVICE")
    return needed


def check_compose(root):
    d = os.path.join(root, "deploy/docker")
    c = yaml.safe_load(open(os.path.join(d, "compose.yaml")))
    cfg = yaml.safe_load(open(os.path.join(d, "nzbmesh.compose.yaml")))
    svcs = c.get("services") or {}
    for name, s in svcs.items():
        img = s.get("image", "")
        img_resolved = re.sub(r"\$\{\w+:-([^}]+)\}", r"\1", img)
        if not pinned(img_resolved):
            err(f"compose.yaml: {name} image {img} is not pinned")
        env = s.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) for e in env)
        for k, v in env.items():
            if SENSITIVE.search(k) and "${" not in str(v):
                err(f"compose.yaml: {name} sets {k} to a literal; use ${{VAR}} from deploy/docker/.env")
        for vol in s.get("volumes") or []:
            src = vol.split(":")[0]
            if src.startswith("."):
                if not os.path.exists(os.path.normpath(os.path.join(d, src))):
                    err(f"compose.yaml: {name} mounts {src}, which does not exist")
    for svc in SERVICES:
        s = svcs.get(svc)
        if s is None:
            err(f"compose.yaml: no {svc} service")
            continue
        b = s.get("build") or {}
        if b.get("dockerfile") != "deploy/docker/Dockerfile" or (b.get("args") or {}).get("SERVICE") != svc:
            err(f"compose.yaml: {svc} must build deploy/docker/Dockerfile with SERVICE={svc}")
        if not os.path.exists(os.path.normpath(os.path.join(d, b.get("context", ".."), "deploy/docker/Dockerfile"))):
            err(f"compose.yaml: {svc} build context does not hold deploy/docker/Dockerfile")
        if s.get("read_only") is not True or "ALL" not in (s.get("cap_drop") or []):
            err(f"compose.yaml: {svc} must be read_only with cap_drop ALL")
        if str(s.get("user", "0")).split(":")[0] in ("0", "root"):
            err(f"compose.yaml: {svc} runs as root")
        env = s.get("environment") or {}
        for _, key, value in walk(cfg.get(svc) or {}):
            if key.endswith("_env") and value and value not in env:
                err(f"compose.yaml: {svc} does not set {value} (named by {svc}.{key} in nzbmesh.compose.yaml)")
    if "postgres" not in svcs:
        err("compose.yaml: no postgres service")


def walk(node, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(v, (dict, list)):
                yield from walk(v, f"{path}.{k}")
            else:
                yield path, str(k), v
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")


def main():
    root = sys.argv[1]
    needed = check_dockerfile(root) or {}
    check_compose(root)
    for e in errors:
        print(e)
    if errors:
        print(f"{len(errors)} problem(s)")
        sys.exit(1)
    print(f"OK: Dockerfile and compose.yaml; runtime libraries cover {sorted(needed)}")


if __name__ == "__main__":
    main()
