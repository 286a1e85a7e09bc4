#!/usr/bin/env python3
"""Checks rendered nzbmesh Kubernetes manifests (`kubectl kustomize` output)
against the deployment contract of ARCHITECTURE.md and issue 8.

  k8s_policy_check.py --overlay dev|prod|base RENDERED.yaml

Prints one line per violation and exits 1 if there is any. Needs python3-yaml.
"""
import argparse
import ipaddress
import re
import sys

import yaml

SERVICES = {
    # name: (kind of listener, gRPC/HTTP port, metrics port, drain seconds)
    "broker": ("grpc", 50051, 9091, 20),
    "importer": ("grpc", 50052, 9092, 30),
    "frontend": ("http", 8080, 9093, 30),
    "speedtest": ("grpc", 50053, 9094, 10),
}
REQUIRED_LABELS = [
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
]
SENSITIVE_ENV = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|CREDENTIAL|DATABASE_URL|PRIVATE", re.I)
LITERAL_SECRET_KEYS = {"password", "api_key", "apikey", "database_url", "token", "secret"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet", "Pod"}


class Checker:
    def __init__(self, overlay, docs):
        self.overlay = overlay
        self.docs = [d for d in docs if d]
        self.errors = []

    def err(self, what, msg):
        self.errors.append(f"[{self.overlay}] {what}: {msg}")

    # ------------------------------------------------------------ helpers --
    def of_kind(self, kind):
        return [d for d in self.docs if d.get("kind") == kind]

    def find(self, kind, name):
        for d in self.of_kind(kind):
            if d["metadata"]["name"] == name:
                return d
        return None

    @staticmethod
    def pod_spec(w):
        if w["kind"] == "Pod":
            return w["spec"]
        if w["kind"] == "CronJob":
            return w["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        return w["spec"]["template"]["spec"]

    @staticmethod
    def pod_labels(w):
        if w["kind"] == "Pod":
            return w["metadata"].get("labels", {})
        if w["kind"] == "CronJob":
            return w["spec"]["jobTemplate"]["spec"]["template"]["metadata"].get("labels", {})
        return w["spec"]["template"]["metadata"].get("labels", {})

    def workloads(self):
        return [d for d in self.docs if d.get("kind") in WORKLOAD_KINDS]

    @staticmethod
    def selects(selector, labels):
        if selector is None:
            return False
        for k, v in (selector.get("matchLabels") or {}).items():
            if labels.get(k) != v:
                return False
        for e in selector.get("matchExpressions") or []:
            k, op, vals = e["key"], e["operator"], e.get("values") or []
            if op == "In" and labels.get(k) not in vals:
                return False
            if op == "NotIn" and labels.get(k) in vals:
                return False
            if op == "Exists" and k not in labels:
                return False
            if op == "DoesNotExist" and k in labels:
                return False
        return True

    def workloads_selected(self, selector):
        return [w for w in self.workloads() if self.selects(selector, self.pod_labels(w))]

    def service_workload(self, svc):
        """The nzbmesh Deployment for `svc`, found by app.kubernetes.io/component."""
        for w in self.of_kind("Deployment"):
            if w["metadata"].get("labels", {}).get("app.kubernetes.io/component") == svc:
                return w
        return None

    @staticmethod
    def container_ports(w):
        out = {}
        for c in Checker.pod_spec(w).get("containers", []):
            for p in c.get("ports") or []:
                if "name" in p:
                    out[p["name"]] = p["containerPort"]
        return out

    def config(self):
        cms = [c for c in self.of_kind("ConfigMap") if "nzbmesh.yaml" in (c.get("data") or {})]
        if len(cms) != 1:
            self.err("ConfigMap", f"want exactly one ConfigMap with nzbmesh.yaml, found {len(cms)}")
            return None, {}
        return cms[0], yaml.safe_load(cms[0]["data"]["nzbmesh.yaml"])

    # ------------------------------------------------------------- checks --
    def check_all(self):
        self.check_no_secret_objects()
        self.check_workloads()
        self.check_nzbmesh_services()
        self.check_config()
        self.check_services()
        self.check_hpas()
        self.check_pdbs()
        self.check_ingresses()
        self.check_monitors()
        if self.of_kind("NetworkPolicy"):
            NetworkModel(self).check_flows()
        if self.overlay == "prod":
            self.check_prod()
        if self.overlay == "dev":
            self.check_dev()
        return self.errors

    def check_no_secret_objects(self):
        for s in self.of_kind("Secret"):
            self.err(f"Secret/{s['metadata']['name']}",
                     "rendered manifests must not carry Secrets (literal credentials); reference Secrets the operator creates")

    def check_workloads(self):
        if not self.workloads():
            self.err("manifests", "no workloads rendered")
        for w in self.workloads():
            wname = f"{w['kind']}/{w['metadata']['name']}"
            spec = self.pod_spec(w)
            psc = spec.get("securityContext") or {}
            labels = w["metadata"].get("labels", {})
            plabels = self.pod_labels(w)
            for l in REQUIRED_LABELS:
                if l not in labels:
                    self.err(wname, f"missing label {l}")
                if l not in plabels:
                    self.err(wname, f"pod template missing label {l}")
            if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
                pod_seccomp = False
            else:
                pod_seccomp = True
            if psc.get("runAsUser") == 0:
                self.err(wname, "pod runAsUser is 0 (root)")
            containers = spec.get("containers", []) + spec.get("initContainers", [])
            for c in containers:
                cname = f"{wname} container {c['name']}"
                is_init = c in spec.get("initContainers", [])
                self.check_image(cname, c.get("image", ""))
                res = c.get("resources") or {}
                for kind in ("requests", "limits"):
                    for r in ("cpu", "memory"):
                        if r not in (res.get(kind) or {}):
                            self.err(cname, f"no resources.{kind}.{r}")
                if not is_init:
                    for probe in ("livenessProbe", "readinessProbe"):
                        if probe not in c:
                            self.err(cname, f"no {probe}")
                csc = c.get("securityContext") or {}
                if not (csc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
                    self.err(cname, "runAsNonRoot is not true (pod or container)")
                if csc.get("runAsUser") == 0:
                    self.err(cname, "runAsUser is 0 (root)")
                if csc.get("readOnlyRootFilesystem") is not True:
                    self.err(cname, "readOnlyRootFilesystem is not true")
                if csc.get("allowPrivilegeEscalation") is not False:
                    self.err(cname, "allowPrivilegeEscalation is not false")
                if csc.get("privileged"):
                    self.err(cname, "privileged")
                if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
                    self.err(cname, "capabilities.drop does not include ALL")
                if (csc.get("capabilities") or {}).get("add"):
                    self.err(cname, "adds capabilities")
                if not pod_seccomp and (csc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
                    self.err(cname, "seccompProfile is not RuntimeDefault (pod or container)")
                self.check_env(cname, c)

    def check_image(self, where, image):
        if not image:
            self.err(where, "no image")
            return
        if "@sha256:" in image:
            return
        last = image.rsplit("/", 1)[-1]
        if ":" not in last:
            self.err(where, f"image {image!r} has no tag")
        elif last.rsplit(":", 1)[1] in ("latest", ""):
            self.err(where, f"image {image!r} uses the latest tag")

    def check_env(self, where, c):
        for e in c.get("env") or []:
            name = e["name"]
            if "value" in e and SENSITIVE_ENV.search(name):
                self.err(where, f"env {name} has a literal value; use valueFrom.secretKeyRef")
            vf = e.get("valueFrom") or {}
            if SENSITIVE_ENV.search(name) and "value" not in e and "secretKeyRef" not in vf:
                self.err(where, f"env {name} looks secret but does not come from a secretKeyRef")

    def check_nzbmesh_services(self):
        for svc, (listener, port, mport, drain) in SERVICES.items():
            w = self.service_workload(svc)
            if w is None:
                self.err("Deployment", f"no Deployment with app.kubernetes.io/component={svc}")
                continue
            wname = f"Deployment/{w['metadata']['name']}"
            spec = self.pod_spec(w)
            cs = [c for c in spec["containers"] if c["name"] == svc]
            if len(cs) != 1:
                self.err(wname, f"no container named {svc}")
                continue
            c = cs[0]
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports") or []}
            if ports.get(listener) != port:
                self.err(wname, f"port named {listener} should be {port}, got {ports.get(listener)}")
            if ports.get("metrics") != mport:
                self.err(wname, f"port named metrics should be {mport}, got {ports.get('metrics')}")
            if "--config=/etc/nzbmesh/nzbmesh.yaml" not in (c.get("args") or []) + (c.get("command") or []):
                self.err(wname, "container is not started with --config=/etc/nzbmesh/nzbmesh.yaml")
            mounts = {m["mountPath"]: m for m in c.get("volumeMounts") or []}
            if "/etc/nzbmesh" not in mounts:
                self.err(wname, "nzbmesh.yaml is not mounted at /etc/nzbmesh")
            for probe in ("livenessProbe", "readinessProbe"):
                p = c.get(probe) or {}
                if listener == "grpc":
                    if (p.get("grpc") or {}).get("port") != port:
                        self.err(wname, f"{probe} must be a native grpc probe on port {port}")
                else:
                    path = "/healthz" if probe == "livenessProbe" else "/readyz"
                    hg = p.get("httpGet") or {}
                    if hg.get("path") != path or hg.get("port") not in ("http", port):
                        self.err(wname, f"{probe} must be httpGet {path} on port http")
            grace = spec.get("terminationGracePeriodSeconds", 30)
            pre = 0
            cmd = (((c.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command") or []
            if len(cmd) == 2 and cmd[0].endswith("sleep"):
                pre = int(cmd[1])
            if grace <= drain + pre:
                self.err(wname, f"terminationGracePeriodSeconds {grace} must exceed preStop {pre} s + drain {drain} s")
            if svc == "broker":
                if w["spec"].get("replicas") != 1:
                    self.err(wname, f"broker must have replicas: 1 (budget authority), got {w['spec'].get('replicas')}")
                if (w["spec"].get("strategy") or {}).get("type") != "Recreate":
                    self.err(wname, "broker strategy must be Recreate (two brokers would double every budget)")

    def check_config(self):
        cm, cfg = self.config()
        if cm is None:
            return
        if not isinstance(cfg, dict):
            self.err("nzbmesh.yaml", "not a mapping")
            return
        for svc, (listener, port, mport, _) in SERVICES.items():
            sec = cfg.get(svc)
            if not isinstance(sec, dict):
                self.err("nzbmesh.yaml", f"no {svc} section")
                continue
            lkey = "http_listen" if listener == "http" else "grpc_listen"
            if sec.get(lkey) != f"0.0.0.0:{port}":
                self.err("nzbmesh.yaml", f"{svc}.{lkey} should be 0.0.0.0:{port} in a container, got {sec.get(lkey)}")
            if sec.get("metrics_listen") != f"0.0.0.0:{mport}":
                self.err("nzbmesh.yaml", f"{svc}.metrics_listen should be 0.0.0.0:{mport}, got {sec.get('metrics_listen')}")
            for peer in ("broker", "importer"):
                if peer in sec and peer != svc:
                    self.check_peer_address(f"{svc}.{peer}", sec[peer], peer)
            # Every *_env in the section is filled from a Secret on that container.
            w = self.service_workload(svc)
            c = None
            if w:
                c = next((x for x in self.pod_spec(w)["containers"] if x["name"] == svc), None)
            env = {e["name"]: e for e in (c.get("env") or [])} if c else {}
            for path, key, value in walk(sec):
                if key in LITERAL_SECRET_KEYS:
                    self.err("nzbmesh.yaml", f"{svc}{path}.{key} is a literal secret in a ConfigMap; use {key}_env")
                if key.endswith("_env") and value:
                    e = env.get(value)
                    if e is None:
                        self.err(f"Deployment for {svc}", f"{svc}{path}.{key} names {value}, which the container does not set")
                    elif "secretKeyRef" not in (e.get("valueFrom") or {}):
                        self.err(f"Deployment for {svc}", f"{value} must come from valueFrom.secretKeyRef")
            if svc == "broker":
                names = [p.get("name") for p in sec.get("providers") or []]
                if not names:
                    self.err("nzbmesh.yaml", "broker has no providers")
                if len(set(names)) != len(names):
                    self.err("nzbmesh.yaml", f"duplicate provider names {names}")
                for p in sec.get("providers") or []:
                    if "password_env" not in p and "password_file" not in p:
                        self.err("nzbmesh.yaml", f"provider {p.get('name')} has neither password_env nor password_file")
        # The ConfigMap is the one the pods mount.
        for w in self.workloads():
            for v in self.pod_spec(w).get("volumes") or []:
                ref = (v.get("configMap") or {}).get("name")
                if ref and not self.find("ConfigMap", ref):
                    self.err(f"{w['kind']}/{w['metadata']['name']}", f"mounts ConfigMap {ref}, which is not rendered")

    def check_peer_address(self, what, addr, peer):
        host, _, port = str(addr).rpartition(":")
        svc = self.find("Service", host.split(".")[0])
        if svc is None:
            self.err("nzbmesh.yaml", f"{what} = {addr}: no Service named {host}")
            return
        ports = [p for p in svc["spec"]["ports"] if str(p["port"]) == port]
        if not ports:
            self.err("nzbmesh.yaml", f"{what} = {addr}: Service {host} has no port {port}")
            return
        w = self.service_workload(peer)
        target = ports[0].get("targetPort", ports[0]["port"])
        cports = self.container_ports(w) if w else {}
        if isinstance(target, str) and cports.get(target) != SERVICES[peer][1]:
            self.err("nzbmesh.yaml", f"{what}: Service {host} port {port} does not reach the {peer} listener")

    def check_services(self):
        for s in self.of_kind("Service"):
            sname = f"Service/{s['metadata']['name']}"
            ws = self.workloads_selected({"matchLabels": s["spec"].get("selector") or {"-": "no selector"}})
            if len(ws) != 1:
                self.err(sname, f"selector matches {len(ws)} workloads, want 1")
                continue
            cports = self.container_ports(ws[0])
            for p in s["spec"].get("ports") or []:
                if "name" not in p:
                    self.err(sname, f"port {p['port']} has no name")
                t = p.get("targetPort", p["port"])
                if isinstance(t, str) and t not in cports:
                    self.err(sname, f"targetPort {t} is not a named port of {ws[0]['metadata']['name']}")

    def check_hpas(self):
        for h in self.of_kind("HorizontalPodAutoscaler"):
            ref = h["spec"]["scaleTargetRef"]
            w = self.find(ref["kind"], ref["name"])
            hname = f"HPA/{h['metadata']['name']}"
            if w is None:
                self.err(hname, f"targets {ref['kind']}/{ref['name']}, which is not rendered")
                continue
            comp = w["metadata"].get("labels", {}).get("app.kubernetes.io/component")
            if comp == "broker":
                self.err(hname, "the broker must never autoscale")
            if "replicas" in w["spec"]:
                self.err(hname, f"{ref['name']} sets spec.replicas; with an HPA, apply would fight it")

    def check_pdbs(self):
        for p in self.of_kind("PodDisruptionBudget"):
            ws = self.workloads_selected(p["spec"].get("selector"))
            pname = f"PDB/{p['metadata']['name']}"
            if not ws:
                self.err(pname, "selects no pods")
            for w in ws:
                if w["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "broker":
                    self.err(pname, "selects the single broker: it would block node drains")

    def check_ingresses(self):
        for ing in self.of_kind("Ingress"):
            for r in ing["spec"].get("rules") or []:
                for path in (r.get("http") or {}).get("paths") or []:
                    b = path["backend"]["service"]
                    s = self.find("Service", b["name"])
                    if s is None:
                        self.err(f"Ingress/{ing['metadata']['name']}", f"backend Service {b['name']} not rendered")
                        continue
                    want = b["port"].get("name") or b["port"].get("number")
                    if not any(p.get("name") == want or p["port"] == want for p in s["spec"]["ports"]):
                        self.err(f"Ingress/{ing['metadata']['name']}", f"Service {b['name']} has no port {want}")

    def check_monitors(self):
        for m in self.of_kind("ServiceMonitor"):
            svcs = [s for s in self.of_kind("Service") if self.selects(m["spec"]["selector"], s["metadata"].get("labels", {}))]
            mname = f"ServiceMonitor/{m['metadata']['name']}"
            comps = {s["metadata"]["labels"].get("app.kubernetes.io/component") for s in svcs}
            for svc in SERVICES:
                if svc not in comps:
                    self.err(mname, f"does not select the {svc} Service")
            for ep in m["spec"].get("endpoints") or []:
                for s in svcs:
                    if not any(p.get("name") == ep.get("port") for p in s["spec"]["ports"]):
                        self.err(mname, f"Service {s['metadata']['name']} has no port named {ep.get('port')}")
        for m in self.of_kind("PodMonitor"):
            if not self.workloads_selected(m["spec"]["selector"]):
                self.err(f"PodMonitor/{m['metadata']['name']}", "selects no pods")

    def check_prod(self):
        for svc in ("importer", "frontend"):
            w = self.service_workload(svc)
            if w and not any(self.selects(p["spec"].get("selector"), self.pod_labels(w)) for p in self.of_kind("PodDisruptionBudget")):
                self.err("prod", f"no PodDisruptionBudget for the {svc}")
        imp = self.service_workload("importer")
        if imp and (imp["spec"].get("replicas") or 1) < 2:
            self.err("prod", "importer should run more than one replica")
        if not any(h["spec"]["scaleTargetRef"]["name"] == "nzbmesh-frontend" for h in self.of_kind("HorizontalPodAutoscaler")):
            self.err("prod", "no HorizontalPodAutoscaler for the frontend")
        for kind in ("ServiceMonitor", "NetworkPolicy", "Ingress", "PrometheusRule"):
            if not self.of_kind(kind):
                self.err("prod", f"no {kind} (components not applied?)")
        if self.of_kind("StatefulSet"):
            self.err("prod", "prod uses an external PostgreSQL; no StatefulSet expected")

    def check_dev(self):
        ss = [s for s in self.of_kind("StatefulSet") if s["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "postgresql"]
        if len(ss) != 1:
            self.err("dev", "want one PostgreSQL StatefulSet")
            return
        if not ss[0]["spec"].get("volumeClaimTemplates"):
            self.err("dev", "PostgreSQL StatefulSet has no volumeClaimTemplates (PVC)")
        for svc in SERVICES:
            w = self.service_workload(svc)
            if w and (w["spec"].get("replicas") or 1) != 1:
                self.err("dev", f"{svc} should run one replica in dev")


def walk(node, path=""):
    """Yields (path, key, value) for every scalar mapping entry."""
    if isinstance(node, dict):
        for k, v in node.items():
            if isinstance(v, (dict, list)):
                yield from walk(v, f"{path}.{k}")
            else:
                yield path, str(k), v
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")


class NetworkModel:
    """Evaluates NetworkPolicies (networking.k8s.io/v1 semantics) for the flows
    the architecture allows and a set it forbids. Pod IPs never match ipBlock
    (implementation-defined in Kubernetes); external endpoints have an IP."""

    INTERNET = "203.0.113.10"
    EXTERNAL_DB = "198.51.100.5"

    def __init__(self, chk):
        self.c = chk
        self.pols = chk.of_kind("NetworkPolicy")
        ns = {p["metadata"].get("namespace") for p in self.pols} | {
            w["metadata"].get("namespace") for w in chk.workloads()}
        ns.discard(None)
        self.ns = ns.pop() if len(ns) == 1 else "default"
        if len(ns) > 0:
            chk.err("NetworkPolicy", "objects span several namespaces")

    def pod(self, workload_component=None, labels=None, ns=None):
        if workload_component:
            w = self.c.service_workload(workload_component) if workload_component in SERVICES else next(
                (x for x in self.c.workloads()
                 if x["metadata"].get("labels", {}).get("app.kubernetes.io/name") == workload_component), None)
            if w is None:
                return None
            return {"name": workload_component, "ns": self.ns, "labels": self.c.pod_labels(w),
                    "ports": self.c.container_ports(w)}
        return {"name": str(labels), "ns": ns or self.ns, "labels": labels or {}, "ports": {}}

    @staticmethod
    def ext(ip):
        return {"name": ip, "ip": ip}

    def ns_labels(self, ns):
        return {"kubernetes.io/metadata.name": ns}

    def peer_matches(self, peer, pol_ns, ep):
        if "ipBlock" in peer:
            if "ip" not in ep:
                return False
            ip = ipaddress.ip_address(ep["ip"])
            net = ipaddress.ip_network(peer["ipBlock"]["cidr"])
            if ip.version != net.version or ip not in net:
                return False
            return not any(ip in ipaddress.ip_network(x) for x in peer["ipBlock"].get("except") or []
                           if ipaddress.ip_network(x).version == ip.version)
        if "ip" in ep:
            return False
        if "namespaceSelector" in peer:
            if not Checker.selects(peer["namespaceSelector"], self.ns_labels(ep["ns"])):
                return False
        elif ep["ns"] != pol_ns:
            return False
        if "podSelector" in peer:
            return Checker.selects(peer["podSelector"], ep["labels"])
        return True

    @staticmethod
    def port_matches(ports, port, proto, dst):
        if not ports:
            return True
        for p in ports:
            if p.get("protocol", "TCP") != proto:
                continue
            want = p.get("port")
            if want is None:
                return True
            if isinstance(want, str):
                want = (dst.get("ports") or {}).get(want)
            if want == port or (want is not None and p.get("endPort") and want <= port <= p["endPort"]):
                return True
        return False

    def policies_for(self, ep, direction):
        if "ip" in ep:
            return None
        out = []
        for p in self.pols:
            pns = p["metadata"].get("namespace", self.ns)
            if pns != ep["ns"] or not Checker.selects(p["spec"].get("podSelector", {}), ep["labels"]):
                continue
            types = p["spec"].get("policyTypes") or (["Ingress"] + (["Egress"] if "egress" in p["spec"] else []))
            if direction in types:
                out.append(p)
        return out

    def allowed(self, src, dst, port, proto="TCP"):
        eg = self.policies_for(src, "Egress") if src.get("ns") == self.ns else None
        if eg:
            if not any(self.port_matches(r.get("ports"), port, proto, dst)
                       and (not r.get("to") or any(self.peer_matches(peer, p["metadata"].get("namespace", self.ns), dst) for peer in r["to"]))
                       for p in eg for r in p["spec"].get("egress") or []):
                return False
        ing = self.policies_for(dst, "Ingress") if dst.get("ns") == self.ns else None
        if ing:
            if not any(self.port_matches(r.get("ports"), port, proto, dst)
                       and (not r.get("from") or any(self.peer_matches(peer, p["metadata"].get("namespace", self.ns), src) for peer in r["from"]))
                       for p in ing for r in p["spec"].get("ingress") or []):
                return False
        return True

    def check_flows(self):
        P = {s: self.pod(s) for s in SERVICES}
        if any(v is None for v in P.values()):
            self.c.err("NetworkPolicy", "cannot model flows: a service Deployment is missing")
            return
        internet = self.ext(self.INTERNET)
        pg = self.pod("postgresql")
        db = pg if pg else self.ext(self.EXTERNAL_DB)
        prom = self.pod(labels={"app.kubernetes.io/name": "prometheus"}, ns="monitoring")
        dns = self.pod(labels={"k8s-app": "kube-dns"}, ns="kube-system")
        client = self.pod(labels={"nzbmesh.io/api-client": "true"})
        stranger = self.pod(labels={"app": "unrelated"})
        stranger_other_ns = self.pod(labels={"nzbmesh.io/api-client": "true"}, ns="elsewhere")
        must = [
            (internet, P["frontend"], 8080), (P["frontend"], P["importer"], 50052),
            (P["frontend"], P["broker"], 50051), (P["importer"], P["broker"], 50051),
            (P["speedtest"], P["broker"], 50051), (P["importer"], db, 5432),
            (P["broker"], internet, 119), (P["broker"], internet, 563), (P["broker"], internet, 443),
            (client, P["broker"], 50051), (client, P["importer"], 50052), (client, P["speedtest"], 50053),
        ]
        for s, (_, _, mport, _) in SERVICES.items():
            must.append((prom, P[s], mport))
        mustnt = [
            (P["frontend"], internet, 563), (P["importer"], internet, 563), (P["speedtest"], internet, 563),
            (P["importer"], internet, 119), (P["frontend"], internet, 443),
            (P["frontend"], db, 5432), (P["broker"], db, 5432), (P["speedtest"], db, 5432),
            (P["speedtest"], P["importer"], 50052), (P["broker"], P["importer"], 50052),
            (P["broker"], P["frontend"], 8080), (stranger, P["broker"], 50051), (stranger, P["importer"], 50052),
            (stranger, P["speedtest"], 50053), (stranger_other_ns, P["broker"], 50051),
            (internet, P["broker"], 50051), (internet, P["importer"], 50052), (internet, P["speedtest"], 50053),
            (internet, P["broker"], 9091), (prom, P["broker"], 50051), (stranger, P["frontend"], 9093),
        ]
        if pg:
            mustnt += [(internet, pg, 5432), (stranger, pg, 5432), (P["frontend"], pg, 5432)]
        for src, dst, port in must:
            if not self.allowed(src, dst, port):
                self.c.err("NetworkPolicy", f"denies {src['name']} -> {dst['name']}:{port}, which the architecture needs")
        for s in SERVICES:
            if not self.allowed(P[s], dns, 53, "UDP"):
                self.c.err("NetworkPolicy", f"denies {s} -> DNS")
        for src, dst, port in mustnt:
            if self.allowed(src, dst, port):
                self.c.err("NetworkPolicy", f"allows {src['name']} -> {dst['name']}:{port}, which the architecture forbids")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--overlay", required=True)
    ap.add_argument("rendered")
    a = ap.parse_args()
    with open(a.rendered) as f:
        docs = list(yaml.safe_load_all(f))
    errors = Checker(a.overlay, docs).check_all()
    for e in errors:
        print(e)
    if errors:
        print(f"[{a.overlay}] {len(errors)} violation(s)")
        sys.exit(1)
    print(f"[{a.overlay}] OK: {len(docs)} objects")


if __name__ == "__main__":
    main()
