//! From the ruleset the kernel has (as last applied) to the one wanted: one
//! `nft -f` transaction with only what changed, so an endpoint change in a
//! cluster of thousands of Services costs a few lines, not a rewrite, and the
//! kernel switches atomically (no packet sees half a change).
//!
//! Order inside the transaction, so every reference is valid at each step:
//! new sets and chains are declared first (empty); then map and set elements
//! are deleted and added; then changed chains are flushed and refilled and
//! new ones filled; then chains no longer wanted are flushed (dropping their
//! references to each other) and deleted; then sets no longer wanted.
//! Without a previous state (first run, restart, after a failed transaction)
//! the table is deleted if present and created whole, in the same transaction.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::rules::{Collection, Ruleset};

/// Elements per `add element` / `delete element` line.
const ELEMENTS_PER_LINE: usize = 500;

/// The transaction that turns `prev` (the kernel's table, if known) into
/// `next`; empty when nothing changed.
pub fn transaction(prev: Option<&Ruleset>, next: &Ruleset) -> String {
    match prev {
        Some(prev) if updatable(prev, next) => changes(prev, next),
        _ => rebuild(next),
    }
}

/// The whole table from scratch: delete it if present, create it.
pub fn rebuild(next: &Ruleset) -> String {
    let t = &next.table;
    // `add` first so that `delete` finds a table even on a clean host.
    let mut out = format!("add table ip {t}\ndelete table ip {t}\nadd table ip {t}\n");
    out.push_str(&changes(&Ruleset { table: next.table.clone(), ..Ruleset::default() }, next));
    out
}

/// The transaction deleting the table `table` (whether or not it exists).
pub fn delete_table(table: &str) -> String {
    format!("add table ip {table}\ndelete table ip {table}\n")
}

/// Whether `prev` can be changed into `next` in place: same table, and no
/// chain or set whose declaration changed under the same name (the kernel
/// cannot re-declare a hook or a set's type; rules never ask for it, as names
/// hash what declarations depend on).
pub fn updatable(prev: &Ruleset, next: &Ruleset) -> bool {
    prev.table == next.table
        && next.chains.iter().all(|(n, c)| prev.chains.get(n).is_none_or(|p| p.decl == c.decl))
        && next.sets.iter().all(|(n, s)| prev.sets.get(n).is_none_or(|p| p.map == s.map && p.spec == s.spec))
}

fn kind(s: &Collection) -> &'static str {
    if s.map {
        "map"
    } else {
        "set"
    }
}

fn braces(decl: &str) -> String {
    if decl.is_empty() {
        String::new()
    } else {
        format!(" {{ {decl} }}")
    }
}

/// Write `add|delete element` lines for `items`, a few hundred per line.
pub fn elements(out: &mut String, verb: &str, table: &str, set: &str, items: &[String]) {
    for chunk in items.chunks(ELEMENTS_PER_LINE) {
        let _ = writeln!(out, "{verb} element ip {table} {set} {{ {} }}", chunk.join(", "));
    }
}

/// The changes in place from `prev` to `next`: two whole tables that are
/// [`updatable`], or two versions of one Service's part of a table (both
/// listing the shared maps, so that only their elements change).
pub fn changes(prev: &Ruleset, next: &Ruleset) -> String {
    let t = &next.table;
    let mut out = String::new();
    let empty = BTreeMap::new();
    for (name, s) in next.sets.iter().filter(|(n, _)| !prev.sets.contains_key(*n)) {
        let _ = writeln!(out, "add {} ip {t} {name}{}", kind(s), braces(&s.spec));
    }
    for (name, c) in next.chains.iter().filter(|(n, _)| !prev.chains.contains_key(*n)) {
        let _ = writeln!(out, "add chain ip {t} {name}{}", braces(&c.decl));
    }
    for (name, s) in &next.sets {
        let old = prev.sets.get(name).map_or(&empty, |p| &p.elements);
        let gone: Vec<String> =
            old.iter().filter(|(k, v)| s.elements.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect();
        elements(&mut out, "delete", t, name, &gone);
        let item = |k: &String, v: &String| if s.map { format!("{k} : {v}") } else { k.clone() };
        let new: Vec<String> =
            s.elements.iter().filter(|(k, v)| old.get(*k) != Some(*v)).map(|(k, v)| item(k, v)).collect();
        elements(&mut out, "add", t, name, &new);
    }
    for (name, c) in &next.chains {
        match prev.chains.get(name) {
            Some(p) if p.rules == c.rules => continue,
            Some(_) => {
                let _ = writeln!(out, "flush chain ip {t} {name}");
            }
            None => {}
        }
        for rule in &c.rules {
            let _ = writeln!(out, "add rule ip {t} {name} {rule}");
        }
    }
    let gone: Vec<&String> = prev.chains.keys().filter(|n| !next.chains.contains_key(*n)).collect();
    for name in &gone {
        let _ = writeln!(out, "flush chain ip {t} {name}");
    }
    for name in &gone {
        let _ = writeln!(out, "delete chain ip {t} {name}");
    }
    for (name, s) in prev.sets.iter().filter(|(n, _)| !next.sets.contains_key(*n)) {
        let _ = writeln!(out, "delete {} ip {t} {name}", kind(s));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::rules::tests::{endpoints, many, node, service};
    use super::super::rules::{build, Ruleset};
    use super::*;
    use serde_json::json;

    /// Services among `a`, `b`, `c` (ClusterIP 10.96.0.1x, one port) with the
    /// given number of ready endpoints each (on this node); `a` has a
    /// NodePort, `c` ClientIP affinity.
    fn cluster(counts: &[(&str, usize)]) -> Ruleset {
        let mut svcs = Vec::new();
        let mut eps = Vec::new();
        for (name, n) in counts {
            let i = ["a", "b", "c"].iter().position(|x| x == name).unwrap();
            let mut spec = json!({"clusterIP": format!("10.96.0.1{i}"), "ports": [{"name": "http", "port": 80}]});
            if *name == "a" {
                spec["type"] = json!("NodePort");
                spec["ports"][0]["nodePort"] = json!(30001);
            }
            if *name == "c" {
                spec["sessionAffinity"] = json!("ClientIP");
            }
            svcs.push(service(name, spec));
            let addrs: Vec<String> = (0..*n).map(|k| format!("10.244.{}.{}", i + 1, k + 2)).collect();
            let addrs: Vec<(&str, &str, bool)> = addrs.iter().map(|ip| (ip.as_str(), "n1", true)).collect();
            eps.push(endpoints(name, &addrs, &[("http", 8080, "TCP")]));
        }
        let svcs: Vec<_> = svcs.iter().collect();
        let eps: Vec<_> = eps.iter().collect();
        build(&node(), &svcs, &eps)
    }

    fn abc(a: usize, b: usize, c: usize) -> Ruleset {
        cluster(&[("a", a), ("b", b), ("c", c)])
    }

    /// The verbs and objects of a transaction's lines (`add chain`, `flush chain`, …)
    /// with the chain's comment-free name kind (`svc`, `ep`, …), counted.
    fn summary(tx: &str) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for line in tx.lines() {
            let words: Vec<&str> = line.split(' ').collect();
            let name = words.get(4).copied().unwrap_or("");
            // Hashed names (`ep-0123456789abcdef`) count by their kind.
            let kind = match name.split_once('-') {
                Some((kind, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => kind,
                _ => name,
            };
            *out.entry(format!("{} {} {kind}", words[0], words[1])).or_default() += 1;
        }
        out
    }

    fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn transactions_hold_only_what_changed() {
        let base = abc(3, 3, 3);
        let cases: Vec<(&str, Ruleset, Ruleset, BTreeMap<String, usize>)> = vec![
            ("unchanged: nothing to run", base.clone(), base.clone(), counts(&[])),
            (
                "a 4th endpoint: the Service port's pick redone, the endpoint may hairpin",
                base.clone(),
                abc(3, 4, 3),
                counts(&[("flush chain svc", 1), ("add rule svc", 2), ("add element hairpin", 1)]),
            ),
            (
                "a 4th endpoint behind a NodePort: the NodePort chain is untouched",
                base.clone(),
                abc(4, 3, 3),
                counts(&[("flush chain svc", 1), ("add rule svc", 2), ("add element hairpin", 1)]),
            ),
            (
                "a 4th endpoint with ClientIP affinity: its chain and set added, the pick redone",
                base.clone(),
                abc(3, 3, 4),
                counts(&[
                    ("add set aff", 1),
                    ("add chain ep", 1),
                    ("add element hairpin", 1),
                    ("add rule ep", 2),
                    ("flush chain svc", 1),
                    ("add rule svc", 1 + 4 + 1),
                ]),
            ),
            (
                "an endpoint gone",
                base.clone(),
                abc(3, 2, 3),
                counts(&[("flush chain svc", 1), ("add rule svc", 2), ("delete element hairpin", 1)]),
            ),
            (
                "an endpoint with affinity gone: its chain, then its set deleted",
                base.clone(),
                abc(3, 3, 2),
                counts(&[
                    ("delete element hairpin", 1),
                    ("flush chain svc", 1),
                    ("add rule svc", 1 + 2 + 1),
                    ("flush chain ep", 1),
                    ("delete chain ep", 1),
                    ("delete set aff", 1),
                ]),
            ),
            (
                "last endpoint gone: the ClusterIP moves to the reject map",
                abc(3, 1, 3),
                abc(3, 0, 3),
                counts(&[
                    ("delete element service-ips", 1),
                    ("add element no-endpoint-services", 1),
                    ("delete element hairpin", 1),
                    ("flush chain svc", 1),
                    ("delete chain svc", 1),
                ]),
            ),
            (
                "the Service with a NodePort deleted",
                base.clone(),
                cluster(&[("b", 3), ("c", 3)]),
                counts(&[
                    ("delete element service-ips", 1),
                    ("delete element service-nodeports", 1),
                    ("delete element hairpin", 1),
                    ("flush chain svc", 1),
                    ("flush chain ext", 1),
                    ("delete chain svc", 1),
                    ("delete chain ext", 1),
                ]),
            ),
            (
                "the Service with affinity deleted: its sets after its chains",
                base.clone(),
                cluster(&[("a", 3), ("b", 3)]),
                counts(&[
                    ("delete element service-ips", 1),
                    ("delete element hairpin", 1),
                    ("flush chain svc", 1),
                    ("flush chain ep", 3),
                    ("delete chain svc", 1),
                    ("delete chain ep", 3),
                    ("delete set aff", 3),
                ]),
            ),
        ];
        for (case, prev, next, want) in cases {
            let tx = transaction(Some(&prev), &next);
            assert_eq!(summary(&tx), want, "{case}:\n{tx}");
        }
    }

    #[test]
    fn deleting_a_service_removes_its_elements_and_then_its_chains() {
        let base = abc(3, 3, 3);
        let tx = transaction(Some(&base), &cluster(&[("b", 3), ("c", 3)]));
        let svc_line =
            tx.lines().position(|l| l.starts_with("delete element ip clusterd-proxy-n1 service-ips")).unwrap();
        let chain_line = tx.lines().position(|l| l.starts_with("delete chain")).unwrap();
        let flush_line = tx.lines().position(|l| l.starts_with("flush chain")).unwrap();
        assert!(svc_line < flush_line && flush_line < chain_line, "{tx}");
        assert!(tx.contains("service-ips { 10.96.0.10 . tcp . 80 }"), "{tx}");
        assert!(tx.contains("hairpin { 10.244.1.2 . 10.244.1.2, 10.244.1.3 . 10.244.1.3, 10.244.1.4 . 10.244.1.4 }"));
    }

    #[test]
    fn a_changed_value_is_deleted_then_added() {
        let prev = abc(3, 3, 3);
        let mut next = prev.clone();
        let v = next.sets.get_mut("service-ips").unwrap().elements.get_mut("10.96.0.10 . tcp . 80").unwrap();
        *v = "drop".into();
        let tx = transaction(Some(&prev), &next);
        assert_eq!(
            tx,
            "delete element ip clusterd-proxy-n1 service-ips { 10.96.0.10 . tcp . 80 }\n\
             add element ip clusterd-proxy-n1 service-ips { 10.96.0.10 . tcp . 80 : drop }\n"
        );
    }

    #[test]
    fn without_a_known_state_the_table_is_rebuilt() {
        let next = abc(3, 3, 3);
        let tx = transaction(None, &next);
        let head: Vec<&str> = tx.lines().take(3).collect();
        assert_eq!(
            head,
            ["add table ip clusterd-proxy-n1", "delete table ip clusterd-proxy-n1", "add table ip clusterd-proxy-n1"]
        );
        assert_eq!(tx.lines().filter(|l| l.starts_with("add chain")).count(), next.chains.len());
        // A declaration changed under one name: rebuilt, not patched.
        let mut moved = next.clone();
        moved.chains.get_mut("nat-output").unwrap().decl = "type nat hook output priority -99; policy accept;".into();
        assert!(transaction(Some(&next), &moved).starts_with("add table ip clusterd-proxy-n1\ndelete table"));
        // Another table: rebuilt too.
        let mut other = next.clone();
        other.table = "clusterd-proxy-n2".into();
        assert!(transaction(Some(&next), &other).starts_with("add table ip clusterd-proxy-n2\ndelete table"));
    }

    /// 1,000 Services × 10 endpoints: the table's size, and what one endpoint
    /// change costs (the model rebuilt from the objects, then diffed).
    #[test]
    #[ignore = "a measurement: cargo test --lib proxy::diff -- --ignored --nocapture"]
    fn scale_1000_services_of_10_endpoints() {
        let (s0, e0) = many(1000, 10, None);
        let (s1, e1) = many(1000, 10, Some(500));
        let started = std::time::Instant::now();
        let before = build(&node(), &s0.iter().collect::<Vec<_>>(), &e0.iter().collect::<Vec<_>>());
        let built = started.elapsed();
        let full = transaction(None, &before);
        let started = std::time::Instant::now();
        let after = build(&node(), &s1.iter().collect::<Vec<_>>(), &e1.iter().collect::<Vec<_>>());
        let tx = transaction(Some(&before), &after);
        let changed = started.elapsed();
        println!(
            "1000 services x 10 endpoints: table {} lines ({} chains), full transaction {} lines / {} bytes, \
             built in {built:?}; one endpoint added: build + diff {changed:?}, transaction {} lines",
            before.lines(),
            before.chains.len(),
            full.lines().count(),
            full.len(),
            tx.lines().count()
        );
        assert_eq!(tx.lines().count(), 1 + 2 + 1, "{tx}");
    }
}
