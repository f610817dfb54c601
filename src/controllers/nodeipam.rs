//! Pod CIDRs for nodes: the leader gives each node without one the next free
//! /24 of the cluster CIDR (default 10.244.0.0/16), as kube-controller-manager's
//! node IPAM controller does.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;

use actix::prelude::*;
use k8s_openapi::api::core::v1::Node;
use serde_json::Value;

use crate::objects::conventions::CLUSTER_CONFIG_KEY;
use crate::objects::kinds::NODE;
use crate::objects::typed::Object;
use crate::registry::informer::{self, Change};
use crate::registry::{Origin, Registry};

use crate::objects::network::DEFAULT_CLUSTER_CIDR;

/// A cluster CIDR clusterd cannot split into node /24s.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("--cluster-cidr: Invalid value: \"{0}\": must be an a.b.0.0/16 network")]
pub struct BadClusterCidr(pub String);

/// Parse `a.b.0.0/16`.
pub fn parse_cluster_cidr(cidr: &str) -> Result<Ipv4Addr, BadClusterCidr> {
    let bad = || BadClusterCidr(cidr.to_string());
    let (addr, len) = cidr.split_once('/').ok_or_else(bad)?;
    let base: Ipv4Addr = addr.parse().map_err(|_| bad())?;
    if len != "16" || base.octets()[2] != 0 || base.octets()[3] != 0 {
        return Err(bad());
    }
    Ok(base)
}

/// For each node without a pod CIDR (in name order), the next free /24.
pub fn allocate(cluster: Ipv4Addr, nodes: &[(String, Option<String>)]) -> Vec<(String, String)> {
    let o = cluster.octets();
    let used: BTreeSet<String> = nodes.iter().filter_map(|(_, c)| c.clone()).collect();
    let mut free = (0..=255u8).map(|i| format!("{}.{}.{i}.0/24", o[0], o[1])).filter(|c| !used.contains(c));
    let mut want: Vec<&String> = nodes.iter().filter(|(_, c)| c.is_none()).map(|(n, _)| n).collect();
    want.sort();
    want.into_iter().filter_map(|n| Some((n.clone(), free.next()?))).collect()
}

/// The node IPAM actor (acts on the leader only).
pub struct NodeIpam {
    store: Registry,
    leader: bool,
    nodes: HashMap<String, Arc<Object>>,
}

impl NodeIpam {
    /// An allocator on `store`'s node.
    pub fn new(store: Registry) -> Self {
        NodeIpam { store, leader: false, nodes: HashMap::new() }
    }

    fn cluster_cidr(&self) -> Ipv4Addr {
        let configured = self
            .store
            .reader()
            .get(CLUSTER_CONFIG_KEY)
            .ok()
            .flatten()
            .and_then(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
            .and_then(|v| v.get("clusterCIDR").and_then(Value::as_str).map(String::from));
        parse_cluster_cidr(configured.as_deref().unwrap_or(DEFAULT_CLUSTER_CIDR))
            .unwrap_or_else(|_| parse_cluster_cidr(DEFAULT_CLUSTER_CIDR).expect("default"))
    }

    fn reconcile(&mut self, ctx: &mut Context<Self>) {
        if !self.leader {
            return;
        }
        let nodes: Vec<(String, Option<String>)> = self
            .nodes
            .values()
            .filter_map(|n| n.node())
            .map(|n| (n.metadata.name.clone().unwrap_or_default(), pod_cidr(n).map(String::from)))
            .collect();
        for (name, cidr) in allocate(self.cluster_cidr(), &nodes) {
            let store = self.store.clone();
            let key = NODE.key("", &name);
            // Claim it in the cache at once so the next round does not hand it out again.
            if let Some(n) = self.nodes.get_mut(&key) {
                if let Some(claimed) = with_pod_cidr(n, &cidr) {
                    *n = Arc::new(Object::new(claimed));
                }
            }
            ctx.spawn(
                async move {
                    let r = store
                        .modify(&NODE, "", &name, Origin::ControlPlane, |raw| {
                            let current = Object::new(raw.clone());
                            if current.node().and_then(pod_cidr).is_some() {
                                return false;
                            }
                            match with_pod_cidr(&current, &cidr) {
                                Some(assigned) => {
                                    *raw = assigned;
                                    true
                                }
                                None => false,
                            }
                        })
                        .await;
                    if let Err(e) = r {
                        tracing::warn!(error = %e, node = %name, "assigning a pod CIDR failed");
                    }
                }
                .into_actor(self),
            );
        }
    }
}

/// A node's `spec.podCIDR`.
fn pod_cidr(node: &Node) -> Option<&str> {
    node.spec.as_ref()?.pod_cidr.as_deref()
}

/// The node's JSON with `cidr` as its pod CIDR (`podCIDR` and `podCIDRs`).
fn with_pod_cidr(obj: &Object, cidr: &str) -> Option<Value> {
    let mut node = obj.node()?.clone();
    let spec = node.spec.get_or_insert_with(Default::default);
    spec.pod_cidr = Some(cidr.to_string());
    spec.pod_cidrs = Some(vec![cidr.to_string()]);
    Some(obj.with(&node))
}

#[derive(Message)]
#[rtype(result = "()")]
enum Input {
    Nodes(Change),
    Leader(bool),
}

impl Actor for NodeIpam {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        use futures::StreamExt;
        ctx.add_stream(self.store.watch(&NODE).map(Input::Nodes));
        ctx.add_stream(informer::leadership(self.store.node()).map(Input::Leader));
    }
}

impl StreamHandler<Input> for NodeIpam {
    fn handle(&mut self, item: Input, ctx: &mut Context<Self>) {
        match item {
            Input::Nodes(change) => crate::registry::informer::apply_change(&mut self.nodes, change),
            Input::Leader(l) => self.leader = l,
        }
        self.reconcile(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_free_slash_24s_in_name_order() {
        let base = parse_cluster_cidr("10.244.0.0/16").unwrap();
        let nodes = vec![
            ("b".to_string(), None),
            ("a".to_string(), Some("10.244.0.0/24".to_string())),
            ("c".to_string(), None),
        ];
        assert_eq!(
            allocate(base, &nodes),
            vec![("b".into(), "10.244.1.0/24".into()), ("c".into(), "10.244.2.0/24".into())]
        );
        assert!(parse_cluster_cidr("10.244.1.0/24").is_err());
    }

    #[test]
    fn a_pod_cidr_is_written_over_the_node_as_stored() {
        let node = Object::new(serde_json::json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "a", "annotations": {"team": "blue"}}, "spec": {"futureField": 1}}));
        assert_eq!(node.node().and_then(pod_cidr), None);
        let written = Object::new(with_pod_cidr(&node, "10.244.3.0/24").unwrap());
        assert_eq!(written.node().and_then(pod_cidr), Some("10.244.3.0/24"));
        assert_eq!(written["spec"]["podCIDRs"], serde_json::json!(["10.244.3.0/24"]));
        assert_eq!(
            (&written["spec"]["futureField"], &written["metadata"]["annotations"]["team"]),
            (&serde_json::json!(1), &serde_json::json!("blue"))
        );
    }
}
