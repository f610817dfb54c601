#!/usr/bin/env bash
# A local 3-node cluster on loopback: three clusterd processes, each with its own
# data directory under .local/cluster. The first run creates the cluster; later
# runs start the same nodes again. Ctrl-C stops all three.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/debug/clusterd}
ROOT=${CLUSTER_DIR:-.local/cluster}
mkdir -p "$ROOT"
pids=()
cleanup() {
  echo; echo "stopping nodes..."
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

api() { echo "127.0.0.1:$((6442 + $1))"; }
raft() { echo "127.0.0.1:$((2379 + $1))"; }
CONFIG="$ROOT/n1/admin.conf"

wait_for() { # wait_for DESCRIPTION COMMAND...
  local what=$1; shift
  for _ in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "timed out waiting for $what; see $ROOT/*.log" >&2; exit 1
}

if [ -f "$ROOT/n1/node.json" ]; then
  for i in 1 2 3; do
    "$BIN" start --data-dir "$ROOT/n$i" >>"$ROOT/n$i.log" 2>&1 & pids+=($!)
  done
else
  "$BIN" init --data-dir "$ROOT/n1" --name n1 --api-addr "$(api 1)" --raft-addr "$(raft 1)" >>"$ROOT/n1.log" 2>&1 & pids+=($!)
  wait_for "n1 to initialize" test -f "$CONFIG"
  for i in 2 3; do
    token=$("$BIN" --config "$CONFIG" token create | tail -n1)
    "$BIN" join "$(api 1)" --token "$token" --control-plane --data-dir "$ROOT/n$i" --name "n$i" \
      --api-addr "$(api $i)" --raft-addr "$(raft $i)" >>"$ROOT/n$i.log" 2>&1 & pids+=($!)
    wait_for "n$i to join" test -f "$ROOT/n$i/node.json"
  done
fi
wait_for "the cluster to answer" "$BIN" --config "$CONFIG" status
"$BIN" --config "$CONFIG" image load target/images/busybox-v1.tar
"$BIN" --config "$CONFIG" apply -f examples/sample-app.yaml
# The page is the same on every replica; each pod says which one it is in a
# second file, so that repeated requests show the Service spreading them.
ready_pods() { [ "$("$BIN" --config "$CONFIG" get pods -n demo -l app=hello | grep -c ' 1/1 ')" -ge 2 ]; }
wait_for "the sample pods to be Ready" ready_pods
IP=$("$BIN" --config "$CONFIG" get svc hello -n demo -o json | sed -n 's/.*"clusterIP": *"\([^"]*\)".*/\1/p' | head -n1)
HOST_IP=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
HOST_IP=${HOST_IP:-$(ip -4 -o addr show scope global | awk 'NR==1 {split($4, a, "/"); print a[1]}')}
POD=$("$BIN" --config "$CONFIG" get pods -n demo -l app=hello | awk 'NR==2 {print $1}')
# kubectl's credentials: the admin's, with every node's API server.
"$BIN" --config "$CONFIG" kubeconfig > "$ROOT/kubeconfig"
served() { curl -fsS --max-time 2 "http://$IP/" >/dev/null; }
wait_for "the Service to answer" served

cat <<MSG

clusterd is running: 3 control-plane nodes on loopback (logs in $ROOT/n*.log),
and the sample app: deployment demo/hello (2 busybox httpd pods) behind
service demo/hello — ClusterIP $IP, NodePort 30080 on every node.

  curl http://$IP/                 # by ClusterIP, from this host
  curl http://$HOST_IP:30080/      # by NodePort, from any host that reaches this one
  export CLUSTERD_CONFIG=$PWD/$CONFIG
  $BIN exec -n demo $POD -- wget -qO- http://hello      # by name, from a pod
  $BIN exec -n demo $POD -- wget -qO- http://hello.demo.svc.cluster.local
  $BIN get svc,endpoints -n demo
  $BIN get pods -n demo -o wide
  $BIN scale deployment hello -n demo --replicas=3
  $BIN describe svc hello -n demo

kubectl works too (the Kubernetes REST API on the same port):
  export KUBECONFIG=$PWD/$ROOT/kubeconfig
  kubectl get pods -n demo -o wide
  kubectl logs -n demo $POD

Press Ctrl-C to stop the nodes (pods keep running, as containers do when a
kubelet stops); 'make run' again starts the same nodes; 'make reset' removes
the local cluster, its pods and its network.
MSG
wait
