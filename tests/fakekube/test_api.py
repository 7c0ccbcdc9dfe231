"""The API verbs against kubernetes-asyncio's own clients, with the answers a real kube-apiserver gives."""

from __future__ import annotations

import base64
import json

import pytest
from kubernetes_asyncio.client import (
    ApiClient,
    ApiException,
    AppsV1Api,
    CoreV1Api,
    NetworkingV1Api,
    RbacAuthorizationV1Api,
)

from fakekube import FakeKubeServer
from tests.fakekube.conftest import NAMESPACE, deployment

APPLY = "application/apply-patch+yaml"


def message(exc: pytest.ExceptionInfo[ApiException]) -> str:
    return str(json.loads(exc.value.body)["message"])


async def test_objects_of_every_api_group_are_created_with_server_fields(api: ApiClient, kube: FakeKubeServer) -> None:
    core, rbac, net = CoreV1Api(api), RbacAuthorizationV1Api(api), NetworkingV1Api(api)
    account = await core.create_namespaced_service_account(NAMESPACE, {"metadata": {"name": "workflow-api"}})
    role = await rbac.create_namespaced_role(
        NAMESPACE,
        {
            "metadata": {"name": "reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}],
        },
    )
    await rbac.create_namespaced_role_binding(
        NAMESPACE,
        {
            "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "workflow-api", "namespace": NAMESPACE}],
        },
    )
    policy = await net.create_namespaced_network_policy(
        NAMESPACE,
        {
            "metadata": {"name": "ingress-only"},
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"name": "ingress"}}}]}],
            },
        },
    )
    service = await core.create_namespaced_service(
        NAMESPACE, {"metadata": {"name": "api"}, "spec": {"selector": {"app": "api"}, "ports": [{"port": 80}]}}
    )
    secret = await core.create_namespaced_secret(
        NAMESPACE, {"metadata": {"generateName": "token-"}, "stringData": {"token": "s3cret"}}
    )

    assert account.metadata.uid and account.metadata.creation_timestamp and account.metadata.namespace == NAMESPACE
    assert int(policy.metadata.resource_version) > int(role.metadata.resource_version)
    assert service.spec.cluster_ip.startswith("10.96.") and service.spec.ports[0].target_port == 80
    assert secret.metadata.name.startswith("token-") and len(secret.metadata.name) == len("token-") + 5
    assert secret.string_data is None and base64.b64decode(secret.data["token"]) == b"s3cret"
    assert [o["metadata"]["name"] for o in kube.objects("rolebindings", NAMESPACE)] == ["reader"]


async def test_duplicate_create_is_409_and_missing_object_is_404(api: ApiClient) -> None:
    core = CoreV1Api(api)
    await core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "settings"}, "data": {"a": "1"}})

    with pytest.raises(ApiException) as duplicate:
        await core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "settings"}})
    with pytest.raises(ApiException) as missing:
        await core.read_namespaced_config_map("nothing", NAMESPACE)
    with pytest.raises(ApiException) as no_namespace:
        await core.create_namespaced_config_map("elsewhere", {"metadata": {"name": "settings"}})

    assert duplicate.value.status == 409 and message(duplicate) == 'configmaps "settings" already exists'
    assert missing.value.status == 404 and message(missing) == 'configmaps "nothing" not found'
    assert no_namespace.value.status == 404 and message(no_namespace) == 'namespaces "elsewhere" not found'


async def test_invalid_names_labels_and_fields_are_422(api: ApiClient) -> None:
    core = CoreV1Api(api)
    for body in (
        {"metadata": {"name": "Upper_Case"}},
        {"metadata": {"name": "ok", "labels": {"transfer": "urn:uuid:1234"}}},
        {"metadata": {"name": "ok2"}, "dataa": {"typo": "field"}},
    ):
        with pytest.raises(ApiException) as refused:
            await core.create_namespaced_config_map(NAMESPACE, body)
        assert refused.value.status == 422, refused.value.body


async def test_server_side_apply_twice_changes_nothing() -> None:
    # No controller here: its status writes would change the resourceVersion between the two applies.
    async with FakeKubeServer(controller=False) as kube, kube.api_client() as api:
        apps = AppsV1Api(api)
        await CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
        body = deployment("workflow-api", replicas=1)

        first = await apps.patch_namespaced_deployment(
            "workflow-api", NAMESPACE, body, field_manager="gxwf", force=True, _content_type=APPLY
        )
        second = await apps.patch_namespaced_deployment(
            "workflow-api", NAMESPACE, body, field_manager="gxwf", force=True, _content_type=APPLY
        )
        body["spec"]["replicas"] = 2
        third = await apps.patch_namespaced_deployment(
            "workflow-api", NAMESPACE, body, field_manager="gxwf", force=True, _content_type=APPLY
        )

        assert first.metadata.uid == second.metadata.uid == third.metadata.uid
        assert second.metadata.resource_version == first.metadata.resource_version
        assert second.metadata.generation == 1 and third.metadata.generation == 2 and third.spec.replicas == 2
        assert len(kube.objects("deployments", NAMESPACE)) == 1
        assert kube.calls["patch", "deployments.apps"] == 3


async def test_replace_with_a_stale_resource_version_is_a_conflict(api: ApiClient) -> None:
    core = CoreV1Api(api)
    created = await core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "cm"}, "data": {"v": "1"}})
    created.data = {"v": "2"}
    replaced = await core.replace_namespaced_config_map("cm", NAMESPACE, created)
    created.data = {"v": "3"}

    with pytest.raises(ApiException) as stale:
        await core.replace_namespaced_config_map("cm", NAMESPACE, created)

    assert replaced.data == {"v": "2"}
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    assert stale.value.status == 409 and "has been modified" in message(stale)


async def test_strategic_merge_merges_containers_by_name_and_merge_patch_replaces_lists(api: ApiClient) -> None:
    apps = AppsV1Api(api)
    body = deployment("merge")
    body["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "envoy:1"})
    await apps.create_namespaced_deployment(NAMESPACE, body)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "envoy:2"}]}}}}

    merged = await apps.patch_namespaced_deployment("merge", NAMESPACE, patch)
    replaced = await apps.patch_namespaced_deployment(
        "merge", NAMESPACE, patch, _content_type="application/merge-patch+json"
    )
    by_json = await apps.patch_namespaced_deployment(
        "merge", NAMESPACE, [{"op": "replace", "path": "/spec/replicas", "value": 3}]
    )

    assert [(c.name, c.image) for c in merged.spec.template.spec.containers] == [
        ("main", "busybox:1.36"),
        ("sidecar", "envoy:2"),
    ]
    assert [c.name for c in replaced.spec.template.spec.containers] == ["sidecar"]
    assert by_json.spec.replicas == 3


async def test_label_and_field_selectors(api: ApiClient) -> None:
    core = CoreV1Api(api)
    for name, labels in (("a", {"tier": "web", "env": "prod"}), ("b", {"tier": "web"}), ("c", {"tier": "db"})):
        await core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": name, "labels": labels}})

    async def names(**selectors: str) -> list[str]:
        found = await core.list_namespaced_config_map(NAMESPACE, **selectors)
        return [item.metadata.name for item in found.items]

    assert await names(label_selector="tier=web") == ["a", "b"]
    assert await names(label_selector="tier=web,!env") == ["b"]
    assert await names(label_selector="tier in (db, cache)") == ["c"]
    assert await names(label_selector="tier!=web,tier") == ["c"]
    assert await names(field_selector="metadata.name=b") == ["b"]
    assert await names(label_selector="tier", limit=2) == ["a", "b"]


async def test_status_subresource_is_separate_from_the_main_resource(api: ApiClient) -> None:
    apps = AppsV1Api(api)
    await apps.create_namespaced_deployment(NAMESPACE, deployment("status", replicas=0))
    main = await apps.patch_namespaced_deployment("status", NAMESPACE, {"status": {"replicas": 7}})
    status = await apps.patch_namespaced_deployment_status("status", NAMESPACE, {"status": {"observedGeneration": 9}})

    assert main.status is None or main.status.replicas != 7
    assert status.status.observed_generation == 9 and status.metadata.generation == 1


async def test_delete_collection_by_label(api: ApiClient, kube: FakeKubeServer) -> None:
    core = CoreV1Api(api)
    for name, owner in (("x1", "x"), ("x2", "x"), ("y1", "y")):
        await core.create_namespaced_secret(NAMESPACE, {"metadata": {"name": name, "labels": {"owner": owner}}})

    await core.delete_collection_namespaced_secret(NAMESPACE, label_selector="owner=x")

    assert [s["metadata"]["name"] for s in kube.objects("secrets", NAMESPACE)] == ["y1"]


async def test_calls_are_counted_per_verb_and_resource(api: ApiClient, kube: FakeKubeServer) -> None:
    core = CoreV1Api(api)
    kube.reset_calls()
    await core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "counted"}})
    await core.read_namespaced_config_map("counted", NAMESPACE)
    await core.read_namespaced_config_map("counted", NAMESPACE)
    await core.list_namespaced_config_map(NAMESPACE)

    assert kube.calls == {("create", "configmaps"): 1, ("get", "configmaps"): 2, ("list", "configmaps"): 1}
    assert kube.calls_in(NAMESPACE) == kube.calls and not kube.calls_in("default")
    assert all(call.status in (200, 201) for call in kube.call_log if not call.controller)


async def test_a_test_reaction_outranks_the_fake(api: ApiClient, kube: FakeKubeServer) -> None:
    """kmock's DSL still works for faults: the first create of a config map fails with a 500."""
    core = CoreV1Api(api)
    kube.api["post", "/api/v1/namespaces/team-a/configmaps"][:1] << 500

    with pytest.raises(ApiException) as failed:
        await core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "flaky"}})
    retried = await core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "flaky"}})

    assert failed.value.status == 500 and retried.metadata.name == "flaky"


async def test_resource_quota_refuses_pods_over_the_gpu_limit(api: ApiClient, kube: FakeKubeServer) -> None:
    core = CoreV1Api(api)
    await core.create_namespaced_resource_quota(
        NAMESPACE, {"metadata": {"name": "compute"}, "spec": {"hard": {"requests.nvidia.com/gpu": "1", "pods": "5"}}}
    )

    def gpu_pod(name: str) -> dict[str, object]:
        resources = {"limits": {"nvidia.com/gpu": "1"}}
        container = {"name": "main", "image": "carla:0.9", "resources": resources}
        return {"metadata": {"name": name}, "spec": {"restartPolicy": "Never", "containers": [container]}}

    await core.create_namespaced_pod(NAMESPACE, gpu_pod("gpu-1"))
    with pytest.raises(ApiException) as refused:
        await core.create_namespaced_pod(NAMESPACE, gpu_pod("gpu-2"))
    await kube.settled()

    assert refused.value.status == 403
    assert "exceeded quota: compute, requested: requests.nvidia.com/gpu=1" in message(refused)
    quota = kube.get("resourcequotas", "compute", NAMESPACE)
    assert quota is not None and quota["status"]["used"] == {"requests.nvidia.com/gpu": "1", "pods": "1"}


async def test_an_apply_drops_what_the_same_manager_no_longer_applies(api: ApiClient) -> None:
    apps = AppsV1Api(api)
    body = deployment("env")
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    await apps.patch_namespaced_deployment("env", NAMESPACE, body, field_manager="gxwf", _content_type=APPLY)
    await apps.patch_namespaced_deployment("env", NAMESPACE, {"metadata": {"labels": {"by": "someone-else"}}})

    container["env"] = [{"name": "A", "value": "1"}]
    applied = await apps.patch_namespaced_deployment("env", NAMESPACE, body, field_manager="gxwf", _content_type=APPLY)

    assert [e.name for e in applied.spec.template.spec.containers[0].env] == ["A"]
    assert applied.metadata.labels == {"by": "someone-else"}


async def test_the_kubeconfig_file_works_with_load_kube_config(kube: FakeKubeServer) -> None:
    from kubernetes_asyncio import config
    from kubernetes_asyncio.client import Configuration

    configuration = Configuration()
    await config.load_kube_config(config_file=str(kube.kubeconfig_path), client_configuration=configuration)
    async with ApiClient(configuration) as client:
        namespaces = await CoreV1Api(client).list_namespace()

    assert configuration.host == kube.url
    assert {"default", "kube-system"} <= {ns.metadata.name for ns in namespaces.items}
