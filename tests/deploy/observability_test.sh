#!/usr/bin/env bash
# promtool check config (local and Kubernetes scrape configs), check rules and
# test rules; the PrometheusRule in deploy/k8s is in sync with the rule files;
# every metric and label the rules and the Grafana dashboard use is one the
# services export (tests/deploy/testdata/exported_metrics.txt and, when
# NZBMESH_METRICS_URLS is set, a live scrape).
set -euo pipefail
# shellcheck source=tests/deploy/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PROMTOOL="${PROMTOOL:-$(command -v promtool || true)}"
[ -n "$PROMTOOL" ] || fail "promtool not found: install the Debian package prometheus"
OBS="$SRC/deploy/observability"
PROM="$OBS/prometheus"

# Work on a real copy: promtool resolves rule_files relative to the config.
cp -rL "$PROM" "$WORK/prometheus"
P="$WORK/prometheus"

"$PROMTOOL" check config "$P/prometheus-local.yml" || fail "prometheus-local.yml"

# Debian's prometheus is built without Kubernetes service discovery; then check
# everything else in the file by swapping the SD block for an empty static one.
if ! out="$("$PROMTOOL" check config "$P/prometheus-k8s.yml" 2>&1)"; then
  if grep -q "field kubernetes_sd_configs not found" <<<"$out"; then
    echo "note: this promtool lacks kubernetes_sd_configs; checking prometheus-k8s.yml with it stubbed"
    sed -e 's/^    kubernetes_sd_configs:$/    static_configs:/' \
        -e 's/^      - role: pod$/      - targets: []/' "$P/prometheus-k8s.yml" > "$P/prometheus-k8s-stub.yml"
    grep -q kubernetes_sd_configs "$P/prometheus-k8s-stub.yml" && fail "could not stub kubernetes_sd_configs"
    "$PROMTOOL" check config "$P/prometheus-k8s-stub.yml" || fail "prometheus-k8s.yml"
  else
    echo "$out"; fail "prometheus-k8s.yml"
  fi
else
  echo "$out"
fi

"$PROMTOOL" check rules "$P"/rules/*.yml || fail "rules"
(cd "$P/tests" && "$PROMTOOL" test rules ./*_test.yml) || fail "promtool test rules"

"$PY" "$OBS/render_prometheusrule.py" --check || fail "deploy/k8s/components/monitoring/prometheusrule.yaml is stale"

"$PY" -c 'import json,sys; [json.load(open(f)) for f in sys.argv[1:]]' "$OBS"/grafana/dashboards/*.json \
  || fail "dashboard JSON does not parse"
"$PY" -c 'import yaml,sys; [yaml.safe_load(open(f)) for f in sys.argv[1:]]' \
  "$OBS"/grafana/provisioning/*/*.yml || fail "Grafana provisioning YAML does not parse"

"$PY" "$SRC/tests/deploy/metric_names_check.py" \
  --exported "$SRC/tests/deploy/testdata/exported_metrics.txt" \
  --rules "$P"/rules/*.yml \
  --dashboard "$OBS"/grafana/dashboards/*.json || fail "rules/dashboard use metrics the services do not export"
echo "PASS: Prometheus configs, rules, rule tests, PrometheusRule sync, dashboard metric names"
