//! One round of the proxy, planned: which Services changed since the rules
//! the kernel has, and the one transaction for all of them. Only the
//! Services whose object or Endpoints changed (by identity: the informers
//! share each object version) are decided again and diffed; the others keep
//! their part of the table as it is. At 1,000 Services × 10 endpoints an
//! endpoint change thus costs one Service's rules, not the table's.
//!
//! Without a known kernel state (the first round, after a failure), the whole
//! table is built and written anew.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::diff;
use super::rules::{self, NodeView, Ruleset, HAIRPIN};
use crate::objects::kinds::{ENDPOINTS, SERVICE};
use crate::objects::typed::Object;

/// What the kernel has, as the proxy built it: the node-wide part, each
/// Service's part with the object versions it was built from, and the
/// hairpin pairs (an endpoint may be behind several Services: counted).
#[derive(Debug, Default)]
pub struct Applied {
    base: Ruleset,
    parts: HashMap<String, Part>,
    hairpin: HashMap<String, usize>,
}

impl Applied {
    /// The whole table.
    pub fn table(&self) -> Ruleset {
        let mut all = self.base.clone();
        let mut keys: Vec<&String> = self.parts.keys().collect();
        keys.sort();
        for key in keys {
            rules::merge(&mut all, &self.parts[key].rules);
        }
        if let Some(set) = all.sets.get_mut(HAIRPIN) {
            set.elements.extend(self.hairpin.keys().map(|k| (k.clone(), String::new())));
        }
        all
    }
}

/// One Service's rules (its hairpin pairs apart) and what they were built from.
#[derive(Debug)]
struct Part {
    service: Arc<Object>,
    endpoints: Option<Arc<Object>>,
    rules: Ruleset,
    hairpin: Vec<String>,
}

impl Part {
    fn new(view: &NodeView, service: &Arc<Object>, endpoints: Option<&Arc<Object>>) -> Part {
        let svc = service.service().expect("only Services have parts");
        let mut rules = rules::service_rules(view, svc, endpoints.and_then(|e| e.endpoints()));
        let hairpin = rules.sets.get_mut(HAIRPIN).map(|s| std::mem::take(&mut s.elements)).unwrap_or_default();
        Part { service: service.clone(), endpoints: endpoints.cloned(), rules, hairpin: hairpin.into_keys().collect() }
    }
}

/// A planned round.
#[derive(Debug)]
pub struct Round {
    /// The `nft -f` text (empty: nothing to do).
    pub transaction: String,
    /// What the kernel has once the transaction is applied.
    pub applied: Applied,
    /// Whether the table is written anew.
    pub rebuilt: bool,
    /// How many Services' rules were decided again.
    pub changed: usize,
}

fn same(a: Option<&Arc<Object>>, b: Option<&Arc<Object>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// Count `part`'s hairpin pairs in (`+1`) or out (`-1`), remembering each
/// pair's count before the round.
fn count(hairpin: &mut HashMap<String, usize>, before: &mut HashMap<String, usize>, part: &Part, add: bool) {
    for pair in &part.hairpin {
        let n = hairpin.entry(pair.clone()).or_default();
        before.entry(pair.clone()).or_insert(*n);
        if add {
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
        }
    }
}

/// The store key of the Service an Endpoints object (or a Service) belongs to.
pub fn service_key(object: &Object) -> Option<String> {
    let meta = object.metadata()?;
    Some(SERVICE.key(meta.namespace.as_deref()?, meta.name.as_deref()?))
}

/// The round from `prev` (what the kernel has, if known) to the rules of
/// `services` and `endpoints` (by store key, as the informers keep them).
/// `dirty` names the Services (by store key) whose object or Endpoints may
/// have changed since `prev`; `None`: any may have.
pub fn plan(
    view: &NodeView,
    prev: Option<Applied>,
    services: &HashMap<String, Arc<Object>>,
    endpoints: &HashMap<String, Arc<Object>>,
    dirty: Option<&HashSet<String>>,
) -> Round {
    let base = rules::base(view);
    let prev = prev.filter(|p| diff::updatable(&p.base, &base));
    let rebuilt = prev.is_none();
    let mut applied = prev.unwrap_or_default();
    let old_base = std::mem::replace(&mut applied.base, base);
    let mut keys: Vec<String> = match dirty {
        Some(dirty) if !rebuilt => dirty.iter().cloned().collect(),
        _ => {
            let all: HashSet<&String> = services.keys().chain(applied.parts.keys()).collect();
            all.into_iter().cloned().collect()
        }
    };
    keys.sort();
    let empty = rules::empty_part(view);
    let mut hairpin = std::mem::take(&mut applied.hairpin);
    let mut before = HashMap::new();
    let (mut gone, mut changes) = (String::new(), String::new());
    let mut changed = 0;
    for key in keys {
        let object = services.get(&key).filter(|o| o.service().is_some());
        let eps = object.and_then(|o| {
            let meta = &o.service()?.metadata;
            endpoints.get(&ENDPOINTS.key(meta.namespace.as_deref()?, meta.name.as_deref()?))
        });
        let old = applied.parts.remove(&key);
        let Some(object) = object else {
            if let Some(old) = old {
                changed += 1;
                count(&mut hairpin, &mut before, &old, false);
                gone.push_str(&diff::changes(&old.rules, &empty));
            }
            continue;
        };
        let part = match old {
            Some(p) if Arc::ptr_eq(&p.service, object) && same(p.endpoints.as_ref(), eps) => p,
            old => {
                changed += 1;
                let part = Part::new(view, object, eps);
                if let Some(old) = &old {
                    count(&mut hairpin, &mut before, old, false);
                }
                count(&mut hairpin, &mut before, &part, true);
                changes.push_str(&diff::changes(old.as_ref().map_or(&empty, |p| &p.rules), &part.rules));
                part
            }
        };
        applied.parts.insert(key, part);
    }
    let mut pairs: Vec<(&String, bool)> = before
        .iter()
        .filter(|(pair, was)| (**was > 0) != (hairpin.get(*pair).copied().unwrap_or(0) > 0))
        .map(|(pair, was)| (pair, *was == 0))
        .collect();
    pairs.sort();
    // The node-wide part first, then the Services gone (freeing their map
    // keys), the hairpin pairs, then the Services new or changed.
    let mut tx = diff::changes(&old_base, &applied.base);
    tx.push_str(&gone);
    for (verb, added) in [("delete", false), ("add", true)] {
        let items: Vec<String> = pairs.iter().filter(|(_, a)| *a == added).map(|(p, _)| (*p).clone()).collect();
        diff::elements(&mut tx, verb, &view.table, HAIRPIN, &items);
    }
    tx.push_str(&changes);
    hairpin.retain(|_, n| *n > 0);
    applied.hairpin = hairpin;
    let transaction = if rebuilt { diff::rebuild(&applied.table()) } else { tx };
    Round { transaction, applied, rebuilt, changed }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Endpoints, Service};
    use serde_json::json;

    use super::super::diff::transaction;
    use super::super::rules::build;
    use super::super::rules::tests::{endpoints, node, service};
    use super::*;

    /// The informers' view of Services and Endpoints.
    #[derive(Clone, Default)]
    struct Store {
        services: HashMap<String, Arc<Object>>,
        endpoints: HashMap<String, Arc<Object>>,
    }

    impl Store {
        fn put_service(&mut self, s: &Service) {
            let key = SERVICE.key("default", s.metadata.name.as_deref().unwrap());
            self.services.insert(key, Arc::new(Object::new(serde_json::to_value(s).unwrap())));
        }

        fn put_endpoints(&mut self, e: &Endpoints) {
            let key = ENDPOINTS.key("default", e.metadata.name.as_deref().unwrap());
            self.endpoints.insert(key, Arc::new(Object::new(serde_json::to_value(e).unwrap())));
        }

        fn full(&self) -> Ruleset {
            let s: Vec<_> = self.services.values().filter_map(|o| o.service()).collect();
            let e: Vec<_> = self.endpoints.values().filter_map(|o| o.endpoints()).collect();
            build(&node(), &s, &e)
        }
    }

    fn svc(name: &str, ip: &str, extra: serde_json::Value) -> Service {
        let mut spec = json!({"clusterIP": ip, "ports": [{"name": "http", "port": 80}]});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        service(name, spec)
    }

    fn eps(name: &str, ips: &[&str]) -> Endpoints {
        let addrs: Vec<(&str, &str, bool)> = ips.iter().map(|ip| (*ip, "n1", true)).collect();
        endpoints(name, &addrs, &[("http", 8080, "TCP")])
    }

    /// A transaction's operations, one per element, in a canonical order
    /// (which Service's part an element line came from does not matter).
    fn ops(tx: &str) -> Vec<String> {
        let mut out = Vec::new();
        for line in tx.lines() {
            match line.split_once(" { ") {
                Some((head, items)) if line.contains(" element ") => {
                    out.extend(items.trim_end_matches(" }").split(", ").map(|i| format!("{head} {i}")))
                }
                _ => out.push(line.to_string()),
            }
        }
        out.sort();
        out
    }

    #[test]
    fn a_round_changes_what_a_whole_table_diff_would_and_decides_only_changed_services() {
        let mut s = Store::default();
        s.put_service(&svc(
            "a",
            "10.96.0.11",
            json!({"type": "NodePort",
            "ports": [{"name": "http", "port": 80, "nodePort": 30001}]}),
        ));
        s.put_service(&svc("b", "10.96.0.12", json!({"sessionAffinity": "ClientIP"})));
        s.put_service(&svc("c", "10.96.0.13", json!({})));
        s.put_endpoints(&eps("a", &["10.244.1.2", "10.244.1.3"]));
        s.put_endpoints(&eps("b", &["10.244.1.4", "10.244.1.5"]));
        let first = plan(&node(), None, &s.services, &s.endpoints, None);
        assert!(first.rebuilt && first.transaction.starts_with("add table"));
        assert_eq!(first.applied.table(), s.full());
        type Step = (&'static str, Option<&'static [&'static str]>, usize, Box<dyn Fn(&mut Store)>);
        let steps: Vec<Step> = vec![
            ("nothing changed", Some(&[]), 0, Box::new(|_| {})),
            (
                "an endpoint added to a",
                Some(&["a"]),
                1,
                Box::new(|s| s.put_endpoints(&eps("a", &["10.244.1.2", "10.244.1.3", "10.244.1.9"]))),
            ),
            (
                "b's endpoints gone",
                Some(&["b"]),
                1,
                Box::new(|s| {
                    s.endpoints.remove(&ENDPOINTS.key("default", "b"));
                }),
            ),
            ("c's first endpoint", Some(&["c"]), 1, Box::new(|s| s.put_endpoints(&eps("c", &["10.244.1.6"])))),
            (
                "a deleted, d created (its endpoint was a's too)",
                Some(&["a", "d"]),
                2,
                Box::new(|s| {
                    s.services.remove(&SERVICE.key("default", "a"));
                    s.put_service(&svc("d", "10.96.0.14", json!({})));
                    s.put_endpoints(&eps("d", &["10.244.1.2"]));
                }),
            ),
            (
                "every object a new version (a re-list): all decided again, nothing to change",
                None,
                3,
                Box::new(|s| {
                    for name in ["b", "c", "d"] {
                        let key = SERVICE.key("default", name);
                        let copy = Object::new(s.services[&key].raw().clone());
                        s.services.insert(key, Arc::new(copy));
                    }
                }),
            ),
        ];
        let mut applied = first.applied;
        for (case, dirty, decided, change) in steps {
            let before = s.full();
            change(&mut s);
            let dirty: Option<HashSet<String>> =
                dirty.map(|names| names.iter().map(|n| SERVICE.key("default", n)).collect());
            let round = plan(&node(), Some(applied), &s.services, &s.endpoints, dirty.as_ref());
            assert!(!round.rebuilt, "{case}");
            assert_eq!(round.changed, decided, "{case}");
            assert_eq!(round.applied.table(), s.full(), "{case}");
            assert_eq!(ops(&round.transaction), ops(&transaction(Some(&before), &s.full())), "{case}");
            applied = round.applied;
        }
    }

    /// 1,000 Services × 10 endpoints: what a round costs when one endpoint is
    /// added (the node's share of the benchmark's update time, before `nft`).
    #[test]
    #[ignore = "a measurement: cargo test --lib proxy::plan -- --ignored --nocapture"]
    fn scale_one_endpoint_change_among_1000_services() {
        let (svcs, eps) = super::super::rules::tests::many(1000, 10, None);
        let (_, grown) = super::super::rules::tests::many(1000, 10, Some(500));
        let mut s = Store::default();
        svcs.iter().for_each(|x| s.put_service(x));
        eps.iter().for_each(|x| s.put_endpoints(x));
        let started = std::time::Instant::now();
        let first = plan(&node(), None, &s.services, &s.endpoints, None);
        let full = started.elapsed();
        let first_lines = first.transaction.lines().count();
        s.put_endpoints(&grown[500]);
        let dirty = HashSet::from([SERVICE.key("default", "svc-500")]);
        let started = std::time::Instant::now();
        let round = plan(&node(), Some(first.applied), &s.services, &s.endpoints, Some(&dirty));
        let one = started.elapsed();
        println!(
            "1000 services x 10 endpoints: table {} lines; first round {full:?} ({} lines of nft); \
             one endpoint added: round {one:?}, {} lines of nft",
            round.applied.table().lines(),
            first_lines,
            round.transaction.lines().count()
        );
        assert_eq!(round.changed, 1);
        assert_eq!(round.transaction.lines().count(), 4, "{}", round.transaction);
    }
}
