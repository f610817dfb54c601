//! The ReplicaSets of a Deployment and the steps every strategy shares: the
//! template's hash and the revision numbers that name and order the sets,
//! making the set of a new template, proportional scaling when the
//! Deployment is resized mid-rollout (or paused), and removing old sets
//! beyond the history limit. The strategies only decide sizes; the working
//! copies here remember what changed, so each set is written at most once.

use serde_json::{json, Value};

use super::rolling::Limits;
use super::{progress, recreate, rolling, DESIRED, HASH, REVISION};
use crate::actors::store::{key_of, resource_version};
use crate::controllers::framework::{controller_ref, Action, Cache, Outcome};
use crate::objects::meta_str;

/// A stable, short hash of a pod template (Kubernetes' alphabet, 10 characters).
pub fn template_hash(template: &Value) -> String {
    use sha2::Digest;
    let mut t = template.clone();
    if let Some(labels) = t.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        labels.remove(HASH);
    }
    let digest = sha2::Sha256::digest(serde_json::to_vec(&t).expect("json"));
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    digest.iter().take(10).map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

/// The revision annotation of a Deployment or ReplicaSet (0 when missing).
pub fn revision(obj: &Value) -> i64 {
    annotation(obj, REVISION).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// `spec.replicas` (1 when missing, as the API defaults it).
pub(super) fn replicas_of(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
}

/// A number in `status` (0 when missing).
pub(super) fn status_num(obj: &Value, field: &str) -> i64 {
    obj.pointer(&format!("/status/{field}")).and_then(Value::as_i64).unwrap_or(0)
}

/// One annotation of an object.
pub(super) fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations").and_then(|a| a.get(key)).and_then(Value::as_str)
}

/// Set one annotation of an object.
pub(super) fn annotate(obj: &mut Value, key: &str, value: String) {
    let meta = obj["metadata"].as_object_mut().expect("metadata");
    let ann = meta.entry("annotations").or_insert(json!({}));
    if !ann.is_object() {
        *ann = json!({});
    }
    ann[key] = json!(value);
}

/// The ReplicaSet a Deployment makes for its current template.
pub fn new_replicaset(d: &Value, hash: &str, replicas: i64, revision: i64) -> Value {
    let mut template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
    template["metadata"]["labels"][HASH] = json!(hash);
    let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
    selector["matchLabels"][HASH] = json!(hash);
    let mut labels = template["metadata"]["labels"].clone();
    labels[HASH] = json!(hash);
    let mut rs = json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": format!("{}-{hash}", meta_str(d, "name")),
            "namespace": meta_str(d, "namespace"),
            "labels": labels,
            "ownerReferences": [controller_ref(d)],
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": d.pointer("/spec/minReadySeconds").cloned().unwrap_or(json!(0)),
            "selector": selector,
            "template": template,
        },
    });
    annotate(&mut rs, REVISION, revision.to_string());
    annotate(&mut rs, DESIRED, replicas_of(d).to_string());
    rs
}

/// What one reconcile reads from its Deployment, once.
pub(super) struct Spec<'a> {
    /// The Deployment as the cache has it.
    pub d: &'a Value,
    /// `spec.replicas`.
    pub replicas: i64,
    /// The hash of the current pod template.
    pub hash: String,
    /// `spec.paused`.
    pub paused: bool,
    /// The Recreate strategy (anything else rolls).
    pub recreate: bool,
    /// How far the rollout may go above and below `replicas`.
    pub limits: Limits,
}

impl<'a> Spec<'a> {
    /// Read a Deployment.
    pub fn of(d: &'a Value) -> Self {
        let replicas = replicas_of(d);
        let recreate = d.pointer("/spec/strategy/type").and_then(Value::as_str) == Some("Recreate");
        Spec {
            d,
            replicas,
            hash: template_hash(d.pointer("/spec/template").unwrap_or(&Value::Null)),
            paused: d.pointer("/spec/paused").and_then(Value::as_bool).unwrap_or(false),
            recreate,
            limits: Limits::of(
                recreate,
                d.pointer("/spec/strategy/rollingUpdate/maxSurge"),
                d.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
                replicas,
            ),
        }
    }
}

/// Working copies of a Deployment's ReplicaSets, oldest revision first; the
/// changed ones are written at the end.
pub(super) struct Sets {
    /// Each set and whether it changed.
    pub items: Vec<(Value, bool)>,
    /// The set of the current template, if there is one.
    pub new: Option<usize>,
    /// The highest revision among the sets.
    pub max_rev: i64,
}

impl Sets {
    /// The ReplicaSets the Deployment controls.
    pub fn owned(spec: &Spec, cache: &Cache) -> Self {
        let (ns, uid) = (meta_str(spec.d, "namespace"), meta_str(spec.d, "uid"));
        let mut owned: Vec<Value> = cache.owned_by("ReplicaSet", ns, uid).cloned().collect();
        owned.sort_by_key(|r| (revision(r), meta_str(r, "creationTimestamp").to_string()));
        let max_rev = owned.iter().map(revision).max().unwrap_or(0);
        let new = owned.iter().position(|r| {
            r.pointer("/metadata/labels").and_then(|l| l.get(HASH)).and_then(Value::as_str) == Some(spec.hash.as_str())
        });
        Sets { items: owned.into_iter().map(|r| (r, false)).collect(), new, max_rev }
    }

    /// Set `i`.
    pub fn rs(&self, i: usize) -> &Value {
        &self.items[i].0
    }

    /// The replicas set `i` asks for.
    pub fn replicas(&self, i: usize) -> i64 {
        replicas_of(self.rs(i))
    }

    /// The name of set `i`.
    pub fn name(&self, i: usize) -> &str {
        meta_str(self.rs(i), "name")
    }

    /// The replicas all sets ask for.
    pub fn total(&self) -> i64 {
        self.items.iter().map(|(r, _)| replicas_of(r)).sum()
    }

    /// Every set but the new one, oldest first.
    pub fn olds(&self) -> Vec<usize> {
        (0..self.items.len()).filter(|&i| Some(i) != self.new).collect()
    }

    /// The sets that ask for pods.
    pub fn active(&self) -> Vec<usize> {
        (0..self.items.len()).filter(|&i| self.replicas(i) > 0).collect()
    }

    /// Whether any set changed.
    pub fn changed(&self) -> bool {
        self.items.iter().any(|(_, c)| *c)
    }

    /// Whether the Deployment was resized while more than one set runs: some
    /// running set was sized for other `desired` replicas.
    pub fn resized_mid_rollout(&self, desired: i64) -> bool {
        let desired = desired.to_string();
        let resized =
            self.items.iter().any(|(r, _)| replicas_of(r) > 0 && annotation(r, DESIRED) != Some(desired.as_str()));
        resized && self.active().len() > 1
    }

    /// Size set `i` to `n` pods, recording the Deployment's `desired` replicas.
    pub fn set_replicas(&mut self, i: usize, n: i64, desired: i64) {
        let (rs, changed) = &mut self.items[i];
        if replicas_of(rs) != n {
            rs["spec"]["replicas"] = json!(n);
            *changed = true;
        }
        let d = desired.to_string();
        if annotation(rs, DESIRED) != Some(d.as_str()) {
            annotate(rs, DESIRED, d);
            *changed = true;
        }
    }
}

/// The Event that says a ReplicaSet was scaled.
pub(super) fn scaled(d: &Value, up: bool, rs_name: &str, size: i64) -> Action {
    Action::Event {
        object: d.clone(),
        warning: false,
        reason: "ScalingReplicaSet".into(),
        message: format!("Scaled {} replica set {rs_name} to {size}", if up { "up" } else { "down" }),
    }
}

/// A new template: its ReplicaSet, sized by the strategy, and the
/// Deployment's next revision.
pub(super) fn create_new(spec: &Spec, sets: &Sets, now: chrono::DateTime<chrono::Utc>) -> Outcome {
    let d = spec.d;
    let size = if spec.recreate {
        let old_active = sets.items.iter().any(|(r, _)| replicas_of(r) > 0 || status_num(r, "replicas") > 0);
        recreate::first_size(spec.replicas, old_active)
    } else {
        rolling::first_size(spec.replicas, spec.limits.surge, sets.total(), !sets.items.is_empty())
    };
    let rev = sets.max_rev + 1;
    let rs = new_replicaset(d, &spec.hash, size, rev);
    let rs_name = meta_str(&rs, "name").to_string();
    let mut out = Outcome::default();
    out.actions.push(scaled(d, true, &rs_name, size));
    out.actions.push(Action::Create(rs));
    let mut nd = d.clone();
    annotate(&mut nd, REVISION, rev.to_string());
    progress::new_replicaset_created(&mut nd, &rs_name, now);
    out.actions.push(Action::Replace(nd));
    out
}

/// Proportional scaling: every running set grows or shrinks by its share of
/// `replicas` (plus the surge unless paused).
pub(super) fn scale_proportionally(spec: &Spec, sets: &mut Sets, out: &mut Outcome) {
    let active = sets.active();
    let allowed = spec.replicas + if spec.paused { 0 } else { spec.limits.surge };
    let sizes: Vec<i64> = active.iter().map(|&i| sets.replicas(i)).collect();
    let targets = proportional(&sizes, sets.total(), allowed);
    for (&i, size) in active.iter().zip(targets) {
        let r = sets.replicas(i);
        if size != r {
            out.actions.push(scaled(spec.d, size > r, sets.name(i), size));
        }
        sets.set_replicas(i, size, spec.replicas);
    }
}

/// The sizes of running sets of `sizes` when all sets together ask for
/// `current` pods and `allowed` are wanted: each keeps its share, rounded to
/// the nearest; the last (newest) takes what is left. Unchanged when nothing
/// needs to move.
pub(super) fn proportional(sizes: &[i64], current: i64, allowed: i64) -> Vec<i64> {
    if current == allowed || current <= 0 {
        return sizes.to_vec();
    }
    let mut left = allowed;
    let n = sizes.len();
    let mut out = Vec::with_capacity(n);
    for (j, &r) in sizes.iter().enumerate() {
        let size = if j + 1 == n { left.max(0) } else { (r * allowed + current / 2) / current };
        left -= size;
        out.push(size);
    }
    out
}

/// History: sets scaled to zero beyond `revisionHistoryLimit` go, oldest
/// first; then every other changed set is written.
pub(super) fn clean_up_and_write(spec: &Spec, sets: &Sets, out: &mut Outcome) {
    let limit = spec.d.pointer("/spec/revisionHistoryLimit").and_then(Value::as_i64).unwrap_or(10).max(0) as usize;
    let dead: Vec<usize> =
        sets.olds().into_iter().filter(|&i| sets.replicas(i) == 0 && status_num(sets.rs(i), "replicas") == 0).collect();
    let removed = &dead[..dead.len().saturating_sub(limit)];
    for &i in removed {
        let rs = sets.rs(i);
        out.actions.push(Action::Delete { key: key_of(rs).unwrap_or_default(), rv: resource_version(rs) });
    }
    for (i, (rs, changed)) in sets.items.iter().enumerate() {
        if *changed && !removed.contains(&i) {
            out.actions.push(Action::Replace(rs.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::fixtures::{created, deploy, name, reconcile, replaced_sets, rolling, rs_for};
    use super::*;

    #[test]
    fn a_new_deployment_makes_a_full_replicaset_with_revision_one() {
        let d = deploy(3, "v1", rolling(json!("25%"), json!("25%")));
        let mut c = Cache::default();
        c.put(d.clone());
        let rs = created(&reconcile(&c));
        assert_eq!(rs["spec"]["replicas"], 3);
        assert_eq!(rs["metadata"]["annotations"][REVISION], "1");
        let hash = rs["metadata"]["labels"][HASH].as_str().unwrap();
        assert_eq!(rs["spec"]["selector"]["matchLabels"][HASH], hash);
        assert_eq!(rs["metadata"]["name"], format!("web-{hash}"));
    }

    #[test]
    fn the_template_hash_ignores_its_own_label_and_follows_the_template() {
        let d = deploy(1, "v1", json!({}));
        let t = &d["spec"]["template"];
        let mut labelled = t.clone();
        labelled["metadata"]["labels"][HASH] = json!("whatever");
        assert_eq!(template_hash(t), template_hash(&labelled));
        assert_ne!(template_hash(t), template_hash(&deploy(1, "v2", json!({}))["spec"]["template"]));
        assert_eq!(template_hash(t).len(), 10);
    }

    #[test]
    fn scaling_mid_rollout_is_proportional() {
        let v1 = deploy(10, "v1", rolling(json!(3), json!(2)));
        let v2 = deploy(20, "v2", rolling(json!(3), json!(2)));
        let mut c = Cache::default();
        c.put(v2.clone());
        let mut old = rs_for(&v1, 8, 8, 1);
        annotate(&mut old, DESIRED, "10".into());
        let mut new = rs_for(&v2, 5, 0, 2);
        annotate(&mut new, DESIRED, "10".into());
        c.put(old.clone());
        c.put(new.clone());
        let sizes = replaced_sets(&reconcile(&c));
        let total: i64 = sizes.values().sum();
        assert_eq!(total, 20 + 3, "replicas plus maxSurge");
        assert!(sizes[&name(&old)] > 8);
        assert!(sizes[&name(&new)] > 5);
    }

    #[test]
    fn proportional_shares_round_to_the_nearest_and_the_newest_takes_the_rest() {
        // (running sizes, all sets' total, allowed) -> new sizes
        let cases: &[(&[i64], i64, i64, &[i64])] = &[
            (&[8, 5], 13, 23, &[14, 9]),          // scale up 13 -> 23 (20 + surge 3)
            (&[8, 5], 13, 13, &[8, 5]),           // already the right total: unchanged
            (&[6, 4], 10, 5, &[3, 2]),            // scale down by half
            (&[1, 1, 1], 3, 10, &[3, 3, 4]),      // the rounding remainder goes to the newest
            (&[3, 3], 6, 0, &[0, 0]),             // scale to zero
            (&[5], 5, 7, &[7]),                   // a single set takes everything
            (&[2, 2], 0, 4, &[2, 2]),             // nothing asked for yet: no share to compute
            (&[1, 1, 1, 1], 4, 2, &[1, 1, 1, 0]), // rounding overshoots: the newest stops at zero
        ];
        for (sizes, current, allowed, want) in cases {
            assert_eq!(proportional(sizes, *current, *allowed), *want, "{sizes:?} of {current} -> {allowed}");
        }
    }

    #[test]
    fn old_replicasets_beyond_the_history_limit_are_removed() {
        let v1 = deploy(1, "v1", rolling(json!(1), json!(0)));
        let v2 = deploy(1, "v2", rolling(json!(1), json!(0)));
        let v3 = deploy(1, "v3", rolling(json!(1), json!(0)));
        let mut c = Cache::default();
        c.put(v3.clone());
        c.put(rs_for(&v1, 0, 0, 1));
        c.put(rs_for(&v2, 0, 0, 2));
        let mut new = rs_for(&v3, 1, 1, 3);
        annotate(&mut new, DESIRED, "1".into());
        c.put(new);
        let out = reconcile(&c);
        let deleted: Vec<&String> = out
            .actions
            .iter()
            .filter_map(|a| if let Action::Delete { key, .. } = a { Some(key) } else { None })
            .collect();
        assert_eq!(deleted.len(), 1);
        assert!(deleted[0].ends_with(&name(&rs_for(&v1, 0, 0, 1))));
    }
}
