//! The ReplicaSets of a Deployment and the steps every strategy shares: the
//! template's hash and the revision numbers that name and order the sets,
//! making the set of a new template, proportional scaling when the
//! Deployment is resized mid-rollout (or paused), and removing old sets
//! beyond the history limit. The strategies only decide sizes; the working
//! copies here remember what changed, so each set is written at most once.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::limits::Limits;
use super::{DESIRED, HASH, REVISION};
use crate::controllers::framework::{Action, Cache, Outcome};
use crate::objects::kinds;
use crate::objects::owners::controller_ref_to;
use crate::objects::typed::Object;
use crate::objects::{key_of, resource_version};

/// A stable, short hash of a pod template (Kubernetes' alphabet, 10 characters).
pub fn template_hash(template: &PodTemplateSpec) -> String {
    use sha2::Digest;
    let mut t = template.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(HASH);
    }
    let digest = sha2::Sha256::digest(serde_json::to_vec(&t).expect("a template serializes"));
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    digest.iter().take(10).map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

/// The revision annotation of a Deployment or ReplicaSet (0 when missing).
pub fn revision(meta: &ObjectMeta) -> i64 {
    annotation(meta, REVISION).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// A Deployment's `spec.replicas` (1 when missing, as the API defaults it).
pub(super) fn wanted(d: &Deployment) -> i64 {
    d.spec.as_ref().and_then(|s| s.replicas).map_or(1, i64::from)
}

/// A ReplicaSet's `spec.replicas` (1 when missing, as the API defaults it).
pub(super) fn replicas_of(rs: &ReplicaSet) -> i64 {
    rs.spec.as_ref().and_then(|s| s.replicas).map_or(1, i64::from)
}

/// What a ReplicaSet's status counts: (replicas, ready, available), 0 when missing.
pub(super) fn counted(rs: &ReplicaSet) -> (i64, i64, i64) {
    let s = rs.status.as_ref();
    (
        s.map_or(0, |s| i64::from(s.replicas)),
        s.and_then(|s| s.ready_replicas).map_or(0, i64::from),
        s.and_then(|s| s.available_replicas).map_or(0, i64::from),
    )
}

/// One annotation of an object.
pub(super) fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// Set one annotation of an object.
pub(super) fn annotate(meta: &mut ObjectMeta, key: &str, value: String) {
    meta.annotations.get_or_insert_with(BTreeMap::new).insert(key.into(), value);
}

/// The ReplicaSet a Deployment makes for its current template.
pub fn new_replicaset(d: &Deployment, hash: &str, replicas: i64, revision: i64) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let mut template = spec.template;
    let labels = template.metadata.get_or_insert_with(Default::default).labels.get_or_insert_with(BTreeMap::new);
    labels.insert(HASH.into(), hash.into());
    let labels = labels.clone();
    let mut selector = spec.selector;
    selector.match_labels.get_or_insert_with(BTreeMap::new).insert(HASH.into(), hash.into());
    let mut meta = ObjectMeta {
        name: Some(format!("{}-{hash}", d.metadata.name.as_deref().unwrap_or_default())),
        namespace: d.metadata.namespace.clone(),
        labels: Some(labels),
        owner_references: Some(vec![controller_ref_to(d)]),
        ..Default::default()
    };
    annotate(&mut meta, REVISION, revision.to_string());
    annotate(&mut meta, DESIRED, wanted(d).to_string());
    ReplicaSet {
        metadata: meta,
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas as i32),
            min_ready_seconds: Some(spec.min_ready_seconds.unwrap_or(0)),
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

/// What one reconcile reads from its Deployment, once.
pub(super) struct Spec<'a> {
    /// The Deployment as the cache has it (what Events are about, and what
    /// a changed copy is written over).
    pub obj: &'a Object,
    /// Its typed form.
    pub d: &'a Deployment,
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
    /// `spec.revisionHistoryLimit`.
    pub history_limit: usize,
    /// `spec.progressDeadlineSeconds`.
    pub deadline: i64,
}

impl<'a> Spec<'a> {
    /// Read a Deployment (None if the object is not one).
    pub fn of(obj: &'a Object) -> Option<Self> {
        let d = obj.deployment()?;
        let replicas = wanted(d);
        let spec = d.spec.as_ref();
        let strategy = spec.and_then(|s| s.strategy.as_ref());
        let recreate = strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate");
        let rolling = strategy.and_then(|s| s.rolling_update.as_ref());
        Some(Spec {
            obj,
            d,
            replicas,
            hash: spec.map(|s| template_hash(&s.template)).unwrap_or_default(),
            paused: spec.and_then(|s| s.paused).unwrap_or(false),
            recreate,
            limits: Limits::of(
                recreate,
                rolling.and_then(|r| r.max_surge.as_ref()),
                rolling.and_then(|r| r.max_unavailable.as_ref()),
                replicas,
            ),
            history_limit: spec.and_then(|s| s.revision_history_limit).unwrap_or(10).max(0) as usize,
            deadline: spec.and_then(|s| s.progress_deadline_seconds).map_or(600, i64::from),
        })
    }
}

/// A working copy of one ReplicaSet.
pub(super) struct Set<'a> {
    /// The set as the cache has it.
    pub obj: &'a Object,
    /// The working copy.
    pub rs: ReplicaSet,
    /// Whether the copy changed.
    pub changed: bool,
}

/// Working copies of a Deployment's ReplicaSets, oldest revision first; the
/// changed ones are written at the end.
pub(super) struct Sets<'a> {
    /// Each set.
    pub items: Vec<Set<'a>>,
    /// The set of the current template, if there is one.
    pub new: Option<usize>,
    /// The highest revision among the sets.
    pub max_rev: i64,
}

impl<'a> Sets<'a> {
    /// The ReplicaSets the Deployment controls.
    pub fn owned(spec: &Spec, cache: &'a Cache) -> Self {
        let meta = &spec.d.metadata;
        let (ns, uid) = (meta.namespace.as_deref().unwrap_or(""), meta.uid.as_deref().unwrap_or(""));
        let mut items: Vec<Set<'a>> = cache
            .owned_by(&kinds::REPLICA_SET, ns, uid)
            .filter_map(|obj| Some(Set { obj, rs: obj.replica_set()?.clone(), changed: false }))
            .collect();
        items.sort_by_key(|s| (revision(&s.rs.metadata), s.rs.metadata.creation_timestamp.as_ref().map(|t| t.0)));
        let max_rev = items.iter().map(|s| revision(&s.rs.metadata)).max().unwrap_or(0);
        let new = items.iter().position(|s| {
            s.rs.metadata.labels.as_ref().and_then(|l| l.get(HASH)).map(String::as_str) == Some(spec.hash.as_str())
        });
        Sets { items, new, max_rev }
    }

    /// Set `i`.
    pub fn rs(&self, i: usize) -> &ReplicaSet {
        &self.items[i].rs
    }

    /// The replicas set `i` asks for.
    pub fn replicas(&self, i: usize) -> i64 {
        replicas_of(self.rs(i))
    }

    /// The name of set `i`.
    pub fn name(&self, i: usize) -> &str {
        self.rs(i).metadata.name.as_deref().unwrap_or_default()
    }

    /// The replicas all sets ask for.
    pub fn total(&self) -> i64 {
        self.items.iter().map(|s| replicas_of(&s.rs)).sum()
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
        self.items.iter().any(|s| s.changed)
    }

    /// Whether the Deployment was resized while more than one set runs: some
    /// running set was sized for other `desired` replicas.
    pub fn resized_mid_rollout(&self, desired: i64) -> bool {
        let desired = desired.to_string();
        let resized = self
            .items
            .iter()
            .any(|s| replicas_of(&s.rs) > 0 && annotation(&s.rs.metadata, DESIRED) != Some(desired.as_str()));
        resized && self.active().len() > 1
    }

    /// Size set `i` to `n` pods, recording the Deployment's `desired` replicas.
    pub fn set_replicas(&mut self, i: usize, n: i64, desired: i64) {
        let set = &mut self.items[i];
        if replicas_of(&set.rs) != n {
            set.rs.spec.get_or_insert_with(Default::default).replicas = Some(n as i32);
            set.changed = true;
        }
        let d = desired.to_string();
        if annotation(&set.rs.metadata, DESIRED) != Some(d.as_str()) {
            annotate(&mut set.rs.metadata, DESIRED, d);
            set.changed = true;
        }
    }
}

/// The Event that says a ReplicaSet was scaled.
pub(super) fn scaled(spec: &Spec, up: bool, rs_name: &str, size: i64) -> Action {
    Action::Event {
        object: spec.obj.raw().clone(),
        warning: false,
        reason: "ScalingReplicaSet".into(),
        message: format!("Scaled {} replica set {rs_name} to {size}", if up { "up" } else { "down" }),
    }
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
            out.actions.push(scaled(spec, size > r, sets.name(i), size));
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
    let dead: Vec<usize> =
        sets.olds().into_iter().filter(|&i| sets.replicas(i) == 0 && counted(sets.rs(i)).0 == 0).collect();
    let removed = &dead[..dead.len().saturating_sub(spec.history_limit)];
    for &i in removed {
        let obj = sets.items[i].obj;
        out.actions.push(Action::Delete { key: key_of(obj).unwrap_or_default(), rv: resource_version(obj) });
    }
    for (i, set) in sets.items.iter().enumerate() {
        if set.changed && !removed.contains(&i) {
            out.actions.push(Action::Replace(set.obj.with(&set.rs)));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use serde_json::Value;

    use super::super::fixtures::{annotate_json, created, deploy, name, reconcile, replaced_sets, rolling, rs_for};
    use super::*;

    fn template(d: &Value) -> PodTemplateSpec {
        serde_json::from_value(d["spec"]["template"].clone()).unwrap()
    }

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
        let t = template(&d);
        let mut labelled = d.clone();
        labelled["spec"]["template"]["metadata"]["labels"][HASH] = json!("whatever");
        assert_eq!(template_hash(&t), template_hash(&template(&labelled)));
        assert_ne!(template_hash(&t), template_hash(&template(&deploy(1, "v2", json!({})))));
        assert_eq!(template_hash(&t).len(), 10);
    }

    #[test]
    fn scaling_mid_rollout_is_proportional() {
        let v1 = deploy(10, "v1", rolling(json!(3), json!(2)));
        let v2 = deploy(20, "v2", rolling(json!(3), json!(2)));
        let mut c = Cache::default();
        c.put(v2.clone());
        let mut old = rs_for(&v1, 8, 8, 1);
        annotate_json(&mut old, DESIRED, "10");
        let mut new = rs_for(&v2, 5, 0, 2);
        annotate_json(&mut new, DESIRED, "10");
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
        annotate_json(&mut new, DESIRED, "1");
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
