"""What kube-apiserver does to an object of a given kind on create and update: defaults, generated fields,
status reset and immutable fields. Only the kinds this project deploys get more than the generic rules.
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
from typing import Any

from fakekube.catalog import ResourceType
from fakekube.errors import invalid

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# Kinds whose names must be DNS labels (at most 63 characters), not subdomains.
_LABEL_NAMED = frozenset({("", "namespaces"), ("", "services")})
_JOB_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid", "job-name", "batch.kubernetes.io/job-name")
_cluster_ips = itertools.count(10)


def check_metadata(rtype: ResourceType, obj: dict[str, Any]) -> None:
    """Names and labels that a real cluster refuses (422), e.g. a label value with ':' or over 63 characters."""
    metadata = obj.get("metadata") or {}
    name = metadata.get("name", "")
    causes: list[tuple[str, str]] = []
    if (rtype.group, rtype.plural) in _LABEL_NAMED:
        if len(name) > 63 or not _DNS_LABEL.match(name):
            causes.append(
                (
                    "metadata.name",
                    f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of '
                    "lower case alphanumeric characters or '-', and must start and end with an alphanumeric "
                    "character, at most 63 characters",
                )
            )
    elif rtype.group == "rbac.authorization.k8s.io":
        if not name or "/" in name or "%" in name or name in (".", ".."):
            causes.append(("metadata.name", f'Invalid value: "{name}": may not contain "/" or "%"'))
    elif len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        causes.append(
            (
                "metadata.name",
                f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of '
                "lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                "character",
            )
        )
    for field in ("labels", "annotations"):
        for key, value in (metadata.get(field) or {}).items():
            prefix, _, short = key.rpartition("/")
            if (prefix and not _DNS_SUBDOMAIN.match(prefix)) or len(short) > 63 or not _LABEL_NAME.match(short):
                causes.append(
                    (
                        f"metadata.{field}",
                        f'Invalid value: "{key}": name part must consist of alphanumeric '
                        "characters, '-', '_' or '.', at most 63 characters",
                    )
                )
            if not isinstance(value, str):
                causes.append((f"metadata.{field}", f'Invalid value: "{key}": values must be strings'))
            elif field == "labels" and (len(value) > 63 or not _LABEL_VALUE.match(value)):
                causes.append(
                    (
                        "metadata.labels",
                        f'Invalid value: "{value}": a valid label must be an empty string '
                        "or consist of alphanumeric characters, '-', '_' or '.', at most 63 characters",
                    )
                )
    if causes:
        raise invalid(rtype.kind, rtype.plural, rtype.group, name, causes)


def prepare_create(rtype: ResourceType, obj: dict[str, Any]) -> None:
    """Defaults and generated fields of a new object; `obj` already has its uid."""
    if rtype.has_status and rtype.plural != "namespaces":
        obj.pop("status", None)
    handler = _CREATE.get(rtype.key)
    if handler is not None:
        handler(obj)


def prepare_update(rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Carry server-owned fields over and refuse changes to immutable ones (422)."""
    handler = _UPDATE.get(rtype.key)
    if handler is not None:
        handler(rtype, old, new)


def _pod(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("securityContext", {})
    spec.setdefault("priority", 0)
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault(
        "tolerations",
        [
            {
                "key": f"node.kubernetes.io/{taint}",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            }
            for taint in ("not-ready", "unreachable")
        ],
    )
    for container in itertools.chain(spec.get("initContainers") or [], spec.get("containers") or []):
        image = str(container.get("image", ""))
        tagged = ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest")
        container.setdefault("imagePullPolicy", "IfNotPresent" if tagged or "@" in image else "Always")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})
    obj["status"] = {"phase": "Pending", "qosClass": qos_class(spec)}


def qos_class(spec: dict[str, Any]) -> str:
    containers = list(itertools.chain(spec.get("initContainers") or [], spec.get("containers") or []))
    requests = [((c.get("resources") or {}).get("requests") or {}) for c in containers]
    limits = [((c.get("resources") or {}).get("limits") or {}) for c in containers]
    if not any(requests) and not any(limits):
        return "BestEffort"
    guaranteed = all(
        lim.get(res) is not None and (req.get(res) is None or str(req.get(res)) == str(lim.get(res)))
        for req, lim in zip(requests, limits, strict=True)
        for res in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _pod_update(rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
    def frozen(spec: dict[str, Any]) -> dict[str, Any]:
        spec = copy.deepcopy(spec)
        for key in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
            spec.pop(key, None)
        for container in itertools.chain(spec.get("initContainers") or [], spec.get("containers") or []):
            container.pop("image", None)
        return spec

    if frozen(new.get("spec") or {}) != frozen(old.get("spec") or {}):
        name = old["metadata"]["name"]
        raise invalid(
            rtype.kind,
            rtype.plural,
            rtype.group,
            name,
            [
                (
                    "spec",
                    "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, "
                    "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only "
                    "additions to existing tolerations), `spec.terminationGracePeriodSeconds` (allow it to be set to "
                    "1 if it was previously negative)",
                )
            ],
        )


def _job(obj: dict[str, Any]) -> None:
    metadata = obj["metadata"]
    spec = obj.setdefault("spec", {})
    template = spec.setdefault("template", {})
    restart = (template.get("spec") or {}).get("restartPolicy")
    if restart not in ("Never", "OnFailure"):
        raise invalid(
            "Job",
            "jobs",
            "batch",
            metadata.get("name", ""),
            [
                (
                    "spec.template.spec.restartPolicy",
                    f'Unsupported value: "{restart}": supported values: "OnFailure", "Never"',
                )
            ],
        )
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("manualSelector", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    if not spec.get("manualSelector"):
        uid, name = metadata["uid"], metadata["name"]
        spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels.update(dict(zip(_JOB_LABELS, (uid, uid, name, name), strict=True)))
    _pod_template_defaults(template)


def _job_update(rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
    old_spec, new_spec = old.get("spec") or {}, new.setdefault("spec", {})
    for field in ("selector", "template", "completions", "completionMode", "podFailurePolicy"):
        if field not in new_spec and field in old_spec:
            new_spec[field] = copy.deepcopy(old_spec[field])
        elif new_spec.get(field) != old_spec.get(field):
            raise invalid(
                rtype.kind,
                rtype.plural,
                rtype.group,
                old["metadata"]["name"],
                [(f"spec.{field}", f"Invalid value: {json.dumps(new_spec.get(field))[:200]}: field is immutable")],
            )


def _pod_template_defaults(template: dict[str, Any]) -> None:
    spec = template.setdefault("spec", {})
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})


def _workload(obj: dict[str, Any]) -> None:
    metadata = obj["metadata"]
    spec = obj.setdefault("spec", {})
    selector = spec.get("selector")
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if not selector:
        raise invalid(
            obj.get("kind", "Deployment"), "", "apps", metadata.get("name", ""), [("spec.selector", "Required value")]
        )
    wanted = selector.get("matchLabels") or {}
    if any(labels.get(k) != v for k, v in wanted.items()):
        raise invalid(
            obj.get("kind", "Deployment"),
            "",
            "apps",
            metadata.get("name", ""),
            [("spec.template.metadata.labels", "Invalid value: `selector` does not match template `labels`")],
        )
    spec.setdefault("replicas", 1)
    _pod_template_defaults(spec.setdefault("template", {}))


def _deployment(obj: dict[str, Any]) -> None:
    _workload(obj)
    spec = obj["spec"]
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault(
        "strategy", {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    )
    spec.setdefault("progressDeadlineSeconds", 600)


def _service(obj: dict[str, Any]) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        if not spec.get("clusterIP"):
            n = next(_cluster_ips)
            spec["clusterIP"] = f"10.96.{n // 250 % 250}.{n % 250 + 1}"
        spec.setdefault("clusterIPs", [spec["clusterIP"]])
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    obj["status"] = {"loadBalancer": {}}


def _service_update(rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
    old_spec, new_spec = old.get("spec") or {}, new.setdefault("spec", {})
    for field in ("clusterIP", "clusterIPs"):
        if not new_spec.get(field) and old_spec.get(field):
            new_spec[field] = copy.deepcopy(old_spec[field])
    if new_spec.get("clusterIP") != old_spec.get("clusterIP"):
        raise invalid(
            rtype.kind,
            rtype.plural,
            rtype.group,
            old["metadata"]["name"],
            [("spec.clusterIPs[0]", "Invalid value: may not change once set")],
        )
    for port in new_spec.get("ports") or []:
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))


def _secret(obj: dict[str, Any]) -> None:
    obj.setdefault("type", "Opaque")
    string_data = obj.pop("stringData", None) or {}
    if string_data:
        data = dict(obj.get("data") or {})
        data.update({k: base64.b64encode(str(v).encode()).decode() for k, v in string_data.items()})
        obj["data"] = data


def _secret_update(rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
    _secret(new)
    if old.get("immutable") and (new.get("data") != old.get("data") or new.get("type") != old.get("type")):
        raise invalid(
            rtype.kind,
            rtype.plural,
            rtype.group,
            old["metadata"]["name"],
            [("data", "Forbidden: field is immutable when `immutable` is set")],
        )


def _namespace(obj: dict[str, Any]) -> None:
    obj.setdefault("spec", {})["finalizers"] = ["kubernetes"]
    obj["status"] = {"phase": "Active"}
    labels = obj["metadata"].setdefault("labels", {})
    labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]


def _namespace_update(rtype: ResourceType, old: dict[str, Any], new: dict[str, Any]) -> None:
    new.setdefault("metadata", {}).setdefault("labels", {})["kubernetes.io/metadata.name"] = old["metadata"]["name"]
    new["spec"] = copy.deepcopy(old.get("spec") or {})


def _resource_quota(obj: dict[str, Any]) -> None:
    hard = dict((obj.get("spec") or {}).get("hard") or {})
    obj["status"] = {"hard": hard, "used": {}}


_CREATE = {
    ("", "pods"): _pod,
    ("batch", "jobs"): _job,
    ("apps", "deployments"): _deployment,
    ("apps", "replicasets"): _workload,
    ("apps", "statefulsets"): _workload,
    ("", "services"): _service,
    ("", "secrets"): _secret,
    ("", "namespaces"): _namespace,
    ("", "resourcequotas"): _resource_quota,
}
_UPDATE = {
    ("", "pods"): _pod_update,
    ("batch", "jobs"): _job_update,
    ("", "services"): _service_update,
    ("", "secrets"): _secret_update,
    ("", "namespaces"): _namespace_update,
}
