"""The Python `kubernetes` client against clusterd: what a user of the
library does first. Prints one JSON line of results; the Rust test
(tests/kube_python.rs) asserts them."""

import json
import sys
import time

from kubernetes import client, config, watch
from kubernetes.stream import stream

config.load_kube_config(config_file=sys.argv[1])
ns = "default"
core = client.CoreV1Api()
apps = client.AppsV1Api()
out = {}

pods = core.list_pod_for_all_namespaces()
out["listed_pods"] = len(pods.items)
out["list_resource_version"] = pods.metadata.resource_version

deployment = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "py", "labels": {"app": "py"}},
    "spec": {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "py"}},
        "template": {
            "metadata": {"labels": {"app": "py"}},
            "spec": {
                "containers": [
                    {
                        "name": "main",
                        "image": "clusterd.local/busybox:v1",
                        "command": ["sh", "-c", "echo started; echo $GREETING; sleep 3600"],
                        "env": [{"name": "GREETING", "value": "hi"}],
                    },
                    {"name": "side", "image": "clusterd.local/busybox:v1", "command": ["sleep", "3600"]},
                ]
            },
        },
    },
}
created = apps.create_namespaced_deployment(ns, deployment)
out["created_uid"] = created.metadata.uid

# A strategic merge patch (the client's default for a dict body): the
# container list is merged by name, so `side` stays.
patch = {"spec": {"template": {"spec": {"containers": [{"name": "main", "env": [{"name": "GREETING", "value": "hello from python"}]}]}}}}
patched = apps.patch_namespaced_deployment("py", ns, patch)
out["containers_after_patch"] = [c.name for c in patched.spec.template.spec.containers]
out["env_after_patch"] = [e.value for e in patched.spec.template.spec.containers[0].env]

running = None
w = watch.Watch()
deadline = time.time() + 120
while running is None and time.time() < deadline:
    for event in w.stream(core.list_namespaced_pod, ns, label_selector="app=py", timeout_seconds=10):
        pod = event["object"]
        env = [e.value for e in pod.spec.containers[0].env or []]
        if pod.status.phase == "Running" and "hello from python" in env and pod.metadata.deletion_timestamp is None:
            running = pod.metadata.name
            w.stop()
            break
out["watched_running_pod"] = running

logs = ""
deadline = time.time() + 30
while "hello from python" not in logs and time.time() < deadline:
    logs = core.read_namespaced_pod_log(running, ns, container="main")
    time.sleep(0.5)
out["logs"] = logs

out["exec"] = stream(
    core.connect_get_namespaced_pod_exec,
    running,
    ns,
    container="main",
    command=["cat", "/VERSION"],
    stderr=True,
    stdin=False,
    stdout=True,
    tty=False,
)

apps.delete_namespaced_deployment("py", ns)
try:
    apps.read_namespaced_deployment("py", ns)
    out["deleted"] = False
except client.exceptions.ApiException as e:
    out["deleted"] = e.status == 404

print(json.dumps(out))
