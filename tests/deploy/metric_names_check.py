#!/usr/bin/env python3
"""Checks that every metric the Prometheus rules and the Grafana dashboard
query is one the services export (or a recording rule defined alongside), and
that every label they match or group by belongs to that metric family.

  metric_names_check.py --exported exported_metrics.txt --rules a.yml ... \
      --dashboard nzbmesh.json [--live URL,URL]

With --live (or NZBMESH_METRICS_URLS), the names must also appear in a live
/metrics scrape of the running services. Needs python3-yaml.
"""
import argparse
import json
import os
import re
import sys
import urllib.request

import yaml

FUNCS = set("""
abs absent absent_over_time avg_over_time ceil changes clamp clamp_max clamp_min count_over_time
day_of_month day_of_week day_of_year days_in_month delta deriv exp floor histogram_count histogram_fraction
histogram_quantile histogram_sum holt_winters hour idelta increase irate label_join label_replace
last_over_time ln log10 log2 max_over_time min_over_time minute month predict_linear present_over_time
quantile_over_time rate resets round scalar sgn sort sort_desc sqrt stddev_over_time stdvar_over_time
sum_over_time time timestamp vector year sin cos tan asin acos atan sinh cosh tanh asinh acosh atanh deg rad pi
sum min max avg group stddev stdvar count count_values bottomk topk quantile
by without on ignoring group_left group_right bool and or unless offset inf nan
""".split())
HIST_SUFFIXES = ("_bucket", "_sum", "_count")
IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def parse_expr(expr):
    """Returns [(metric, {label names used})] for one PromQL expression.

    A small lexer, not a parser: enough for the project's own queries."""
    out = []
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # string literals
    s = re.sub(r"\[[^\]]*\]", "", s)                      # range/subquery selectors
    # by/without/on/ignoring/group_x label lists: attribute to every metric in expr.
    grouping = set()
    for m in re.finditer(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", s):
        grouping |= {x.strip() for x in m.group(2).split(",") if x.strip()}
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    # Metric selectors with matchers.
    for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}", s):
        labels = {x.split("=")[0].split("!")[0].strip().strip("~") for x in m.group(2).split(",") if x.strip()}
        labels = {l for l in labels if l}
        out.append((m.group(1), labels))
    s = re.sub(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{[^}]*\}", " ", s)
    for tok in IDENT.findall(s):
        if tok in FUNCS or re.fullmatch(r"\d+[smhdwy]?", tok) or tok in ("e",):
            continue
        out.append((tok, set()))
    return [(name, labels | grouping) for name, labels in out]


def load_exported(path):
    fams = {}
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        labels = set(parts[2].split(",")) if len(parts) > 2 else set()
        fams[parts[0]] = (parts[1], labels)
    return fams


def live_names(urls):
    names = set()
    for url in urls:
        with urllib.request.urlopen(url, timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("# TYPE "):
                    names.add(line.split()[2])
                elif line and not line.startswith("#"):
                    names.add(IDENT.match(line).group(0))
    return names


def family(name, fams):
    if name in fams:
        return name
    for suf in HIST_SUFFIXES:
        if name.endswith(suf) and fams.get(name[: -len(suf)], ("",))[0] == "histogram":
            return name[: -len(suf)]
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--exported", required=True)
    ap.add_argument("--rules", nargs="+", required=True)
    ap.add_argument("--dashboard", nargs="+", required=True)
    ap.add_argument("--live", default=os.environ.get("NZBMESH_METRICS_URLS", ""))
    a = ap.parse_args()

    fams = load_exported(a.exported)
    errors = []
    exprs = []   # (where, expr)
    recorded = {}
    for path in a.rules:
        for g in yaml.safe_load(open(path))["groups"]:
            for r in g["rules"]:
                where = f"{os.path.basename(path)}:{r.get('alert') or r.get('record')}"
                exprs.append((where, r["expr"]))
                if "record" in r:
                    recorded[r["record"]] = where
    for path in a.dashboard:
        d = json.load(open(path))
        ids = set()
        for p in d["panels"]:
            if p["id"] in ids:
                errors.append(f"{path}: duplicate panel id {p['id']}")
            ids.add(p["id"])
            if p["type"] == "row":
                continue
            if not p.get("targets"):
                errors.append(f"{path}: panel {p['title']!r} has no queries")
            for t in p.get("targets", []):
                exprs.append((f"dashboard panel {p['title']!r}", t["expr"]))
        for v in d.get("templating", {}).get("list", []):
            q = v.get("query")
            if isinstance(q, dict):
                q = q.get("query")
            m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", q or "")
            if v.get("type") == "query":
                if not m:
                    errors.append(f"{path}: variable {v['name']} query {q!r} is not label_values(metric, label)")
                else:
                    exprs.append((f"dashboard variable {v['name']}", f"{m.group(1)}{{{m.group(2)}=\"\"}}"))

    used = set()
    for where, expr in exprs:
        for name, labels in parse_expr(expr):
            if name is None:
                continue
            if name == "up":
                used.add(name)
                continue
            if name in recorded:
                continue
            fam = family(name, fams)
            if fam is None:
                errors.append(f"{where}: {name} is not an exported metric, a recording rule or a PromQL function")
                continue
            used.add(fam)
            allowed = fams[fam][1] | {"job", "instance", "namespace", "pod", "le", "__name__"}
            for l in labels - allowed:
                errors.append(f"{where}: {fam} has no label {l!r} (exported: {sorted(fams[fam][1])})")

    if a.live:
        live = live_names([u.strip() for u in a.live.split(",") if u.strip()])
        for fam in sorted(used - {"up"}):
            if fam not in live and f"{fam}_total" not in live:
                errors.append(f"live scrape: {fam} is used by rules/dashboard but not exported by the running services")
        print(f"live scrape: {len(live)} names from {a.live}")

    for e in errors:
        print(e)
    if errors:
        print(f"{len(errors)} problem(s)")
        sys.exit(1)
    print(f"OK: {len(exprs)} expressions use {len(used)} metric families and {len(recorded)} recording rules")


if __name__ == "__main__":
    main()
