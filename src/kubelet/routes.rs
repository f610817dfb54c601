//! Pods on several hosts (host-gw): every node routes each other node's pod
//! CIDR via that node's InternalIP, kept in step with the Node objects — a
//! node that joins is routed to, a node removed takes its route with it.
//! Nodes sharing this host (the same address, or loopback) need no route:
//! their bridges are already on this host.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;
use tokio::sync::watch;
use tokio_stream::StreamExt;

use clusterd_runtime::network::PodRoute;
use clusterd_runtime::Runtime;

use crate::objects::kinds;
use crate::registry::informer::Change;
use crate::registry::Registry;

/// The routes this node wants: each other node's pod CIDR via its
/// InternalIP, unless that address is this node's own or loopback.
pub fn desired(me: &str, my_ip: Option<Ipv4Addr>, nodes: &[Node]) -> Vec<PodRoute> {
    let mut routes: Vec<PodRoute> = nodes
        .iter()
        .filter(|n| n.metadata.name.as_deref() != Some(me))
        .filter_map(|n| {
            let cidr = n.spec.as_ref()?.pod_cidr.clone()?;
            let via = internal_ip(n)?;
            (Some(via) != my_ip && !via.is_loopback() && !via.is_unspecified()).then_some(PodRoute { cidr, via })
        })
        .collect();
    routes.sort();
    routes
}

fn internal_ip(node: &Node) -> Option<Ipv4Addr> {
    let addresses = node.status.as_ref()?.addresses.as_ref()?;
    addresses.iter().find(|a| a.type_ == "InternalIP").and_then(|a| a.address.parse().ok())
}

/// Follow the Node objects and keep the host's routes to the other nodes'
/// pod CIDRs in step, until `stop`.
pub async fn follow(
    store: Registry,
    runtime: Arc<Runtime>,
    me: String,
    my_ip: String,
    mut stop: watch::Receiver<bool>,
) {
    let my_ip: Option<Ipv4Addr> = my_ip.parse().ok();
    let mut feed = store.watch(&kinds::NODE);
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    let mut applied: Option<Vec<PodRoute>> = None;
    loop {
        let change = tokio::select! {
            c = feed.next() => match c { Some(c) => c, None => return },
            _ = stop.wait_for(|s| *s) => return,
        };
        let apply = |obj: &crate::objects::typed::Object, nodes: &mut BTreeMap<String, Node>| {
            if let Some(n) = obj.node() {
                nodes.insert(n.metadata.name.clone().unwrap_or_default(), n.clone());
            }
        };
        match change {
            Change::Reset(all) => {
                nodes.clear();
                for o in &all {
                    apply(o, &mut nodes);
                }
            }
            Change::Put(o) => apply(&o, &mut nodes),
            Change::Delete(o) => {
                if let Some(n) = o.node() {
                    nodes.remove(n.metadata.name.as_deref().unwrap_or_default());
                }
            }
        }
        let all: Vec<Node> = nodes.values().cloned().collect();
        let want = desired(&me, my_ip, &all);
        if applied.as_ref() == Some(&want) {
            continue;
        }
        let rt = runtime.clone();
        let routes = want.clone();
        match tokio::task::spawn_blocking(move || rt.sync_routes(&routes)).await {
            Ok(Ok(())) => {
                tracing::info!(routes = want.len(), "kubelet: routes to other nodes' pods updated");
                applied = Some(want);
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "kubelet: routing other nodes' pods failed"),
            Err(e) => tracing::warn!(error = %e, "kubelet: routing other nodes' pods failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeSpec, NodeStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(name: &str, cidr: Option<&str>, ip: Option<&str>) -> Node {
        Node {
            metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
            spec: Some(NodeSpec { pod_cidr: cidr.map(String::from), ..Default::default() }),
            status: Some(NodeStatus {
                addresses: ip.map(|a| vec![NodeAddress { type_: "InternalIP".into(), address: a.into() }]),
                ..Default::default()
            }),
        }
    }

    fn route(cidr: &str, via: &str) -> PodRoute {
        PodRoute { cidr: cidr.into(), via: via.parse().unwrap() }
    }

    #[test]
    fn routes_follow_the_other_nodes() {
        let me = Some("172.20.0.1".parse().unwrap());
        let cases: Vec<(&str, Vec<Node>, Vec<PodRoute>)> = vec![
            ("alone", vec![node("a", Some("10.244.0.0/24"), Some("172.20.0.1"))], vec![]),
            (
                "two others, sorted",
                vec![
                    node("a", Some("10.244.0.0/24"), Some("172.20.0.1")),
                    node("c", Some("10.244.2.0/24"), Some("172.20.0.3")),
                    node("b", Some("10.244.1.0/24"), Some("172.20.0.2")),
                ],
                vec![route("10.244.1.0/24", "172.20.0.2"), route("10.244.2.0/24", "172.20.0.3")],
            ),
            ("no pod CIDR yet", vec![node("b", None, Some("172.20.0.2"))], vec![]),
            ("no address yet", vec![node("b", Some("10.244.1.0/24"), None)], vec![]),
            ("same host as me", vec![node("b", Some("10.244.1.0/24"), Some("172.20.0.1"))], vec![]),
            ("on loopback", vec![node("b", Some("10.244.1.0/24"), Some("127.0.0.1"))], vec![]),
        ];
        for (what, nodes, want) in cases {
            assert_eq!(desired("a", me, &nodes), want, "{what}");
        }
    }
}
