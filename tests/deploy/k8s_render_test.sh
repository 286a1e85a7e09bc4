#!/usr/bin/env bash
# Renders every kustomize overlay in deploy/k8s with `kubectl kustomize` and
# checks the deployment contract (k8s_policy_check.py): broker replicas 1 and
# Recreate, probes on every container, pinned image tags, requests and limits,
# secrets only from Secrets, hardened securityContext, NetworkPolicy flows.
# Then renders a deliberately broken overlay and expects each violation to be
# reported, so a checker that silently passes everything fails this test.
set -euo pipefail
# shellcheck source=tests/deploy/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

KUBECTL="${KUBECTL:-$(command -v kubectl || true)}"
if [ -z "$KUBECTL" ]; then
  echo "SKIP: kubectl not found on PATH; cannot render deploy/k8s." \
       "Install kubectl (kustomize v4+) to run this test."
  exit 0
fi
# Components (kind: Component) need kustomize >= 3.7; Debian 12's
# kubernetes-client 1.20 bundles kustomize 2.0.3, which cannot render them.
kver="$("$KUBECTL" version --client 2>/dev/null | sed -n 's/^Kustomize Version: v\{0,1\}\([0-9]*\).*/\1/p')"
if [ -z "$kver" ] || [ "$kver" -lt 4 ]; then
  fail "kubectl at $KUBECTL bundles kustomize '${kver:-unknown}' (Debian's kubernetes-client 1.20 has v2.0.3);" \
       "deploy/k8s needs kustomize v4+ (kubectl >= 1.21) for components"
fi

# kustomize does not follow the symlinks Bazel's runfiles are made of: render a
# dereferenced copy laid out like the repository (the bad overlay uses ../..).
TREE="$WORK/tree"
mkdir -p "$TREE/deploy" "$TREE/tests/deploy"
cp -rL "$SRC/deploy/k8s" "$TREE/deploy/"
cp -rL "$SRC/tests/deploy/testdata" "$TREE/tests/deploy/"
K8S="$TREE/deploy/k8s"
CHECK="$SRC/tests/deploy/k8s_policy_check.py"

for overlay in base overlays/dev overlays/prod; do
  name="$(basename "$overlay")"
  out="$WORK/$name.yaml"
  "$KUBECTL" kustomize "$K8S/$overlay" > "$out" || fail "kubectl kustomize $overlay failed"
  "$PY" "$CHECK" --overlay "$name" "$out" || fail "$overlay violates the deployment contract (above)"
done

# The checker's own test.
bad="$WORK/bad.yaml"
"$KUBECTL" kustomize "$TREE/tests/deploy/testdata/bad-overlay" > "$bad" || fail "cannot render the bad overlay"
if "$PY" "$CHECK" --overlay bad "$bad" > "$WORK/bad.out"; then
  cat "$WORK/bad.out"; fail "the checker accepted the broken overlay"
fi
expected=(
  "Secret/nzbmesh-provider-credentials: rendered manifests must not carry Secrets"
  "env MAIN_NNTP_PASSWORD has a literal value"
  "container frontend: no resources.limits.cpu"
  "container importer: readOnlyRootFilesystem is not true"
  "'nzbmesh/speedtest:latest' uses the latest tag"
  "container speedtest: no livenessProbe"
  "broker must have replicas: 1"
  "broker strategy must be Recreate"
  "MAIN_NNTP_PASSWORD must come from valueFrom.secretKeyRef"
  "allows frontend -> 203.0.113.10:563, which the architecture forbids"
)
for e in "${expected[@]}"; do
  grep -qF -- "$e" "$WORK/bad.out" || { cat "$WORK/bad.out"; fail "checker did not report: $e"; }
done
echo "PASS: base, dev and prod render and satisfy the contract; the broken overlay is rejected (${#expected[@]} violations)"
