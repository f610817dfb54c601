//! A node renews its own certificate before it expires: every so often it
//! looks at the certificate it presents, and within `--cert-renew-before` of
//! its expiry has a new one signed for the same names and key by the cluster
//! CA its replica holds, writes it to its data directory (so a restart uses
//! it) and swaps it into the TLS servers and client while they run (new
//! connections present it). It also publishes the expiry in its registration,
//! where `clusterd status` reads every node's.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::sync::watch;

use clusterd_raft::{Command, Compare, Op, RaftNode, Txn};

use super::cert_policy::CertPolicy;
use super::config::{DataDir, NodeState};
use super::node_cert;
use super::ClusterError;
use crate::objects::conventions::keys;
use crate::util;

/// How long publishing the expiry may wait for the leader.
const PUBLISH_WAIT: Duration = Duration::from_secs(10);

/// How soon a node tries again to publish its expiry when it could not (its
/// registration not in its replica yet, just after a join; no leader).
const PUBLISH_RETRY: Duration = Duration::from_secs(2);

/// What to do about a certificate now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// More than the renewal margin is left.
    Fresh,
    /// Renew it.
    Due,
    /// Due, but the CA expires no later than the certificate does: a new one
    /// could not outlive it (certificates never outlive their CA).
    CaExpiring,
}

/// Whether a certificate expiring at `not_after`, from a CA expiring at
/// `ca_not_after`, is renewed at `now` under a margin of `renew_before`.
pub fn renewal(now: SystemTime, not_after: SystemTime, ca_not_after: SystemTime, renew_before: Duration) -> Renewal {
    if now + renew_before < not_after {
        Renewal::Fresh
    } else if ca_not_after <= not_after {
        Renewal::CaExpiring
    } else {
        Renewal::Due
    }
}

/// How often a node looks at its certificate: a quarter of the renewal
/// margin, between a second and ten minutes.
pub fn check_every(policy: &CertPolicy) -> Duration {
    (policy.renew_before() / 4).clamp(Duration::from_secs(1), Duration::from_secs(600))
}

/// The registration `record` with its certificate expiry set to `not_after`,
/// or `None` if it already says so.
pub fn with_expiry(record: &Value, not_after: &str) -> Option<Value> {
    if record.get(keys::MEMBER_CERT_NOT_AFTER).and_then(Value::as_str) == Some(not_after) {
        return None;
    }
    let mut next = record.clone();
    next.as_object_mut()?.insert(keys::MEMBER_CERT_NOT_AFTER.into(), not_after.into());
    Some(next)
}

/// A time as the registrations and `status` write it.
pub fn stamp(t: SystemTime) -> String {
    util::rfc3339(chrono::DateTime::<chrono::Utc>::from(t))
}

/// Look after the node's certificate until `stopped`.
pub async fn run(node: Arc<RaftNode>, dir: DataDir, state: NodeState, mut stopped: watch::Receiver<bool>) {
    let every = check_every(&state.certificates);
    loop {
        renew_now_if_due(&node, &dir, &state);
        let published = match publish(&node, &state).await {
            Ok(done) => done,
            Err(e) => {
                tracing::debug!(node = %state.name, error = %e, "certificate expiry not published yet");
                false
            }
        };
        let next = if published { every } else { every.min(PUBLISH_RETRY) };
        tokio::select! {
            _ = tokio::time::sleep(next) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
    }
}

/// Renew the certificate if it is due; a failure is logged (and the next
/// check tries again).
pub fn renew_now_if_due(node: &RaftNode, dir: &DataDir, state: &NodeState) {
    if let Err(e) = renew_if_due(node, dir, state) {
        let every = check_every(&state.certificates);
        tracing::warn!(node = %state.name, error = %e, "certificate renewal failed; trying again in {every:?}");
    }
}

/// Renew the certificate if it is due: issue, save, then present it.
fn renew_if_due(node: &RaftNode, dir: &DataDir, state: &NodeState) -> Result<(), ClusterError> {
    let live = node.identity();
    let not_after = live.not_after();
    let ca_not_after = clusterd_raft::pki::not_after(live.ca_pem())?;
    match renewal(SystemTime::now(), not_after, ca_not_after, state.certificates.renew_before()) {
        Renewal::Fresh => Ok(()),
        Renewal::CaExpiring => {
            tracing::warn!(
                node = %state.name,
                ca_not_after = %stamp(ca_not_after),
                "the node certificate is due for renewal but the cluster CA expires first: \
                 a renewed certificate cannot outlive it"
            );
            Ok(())
        }
        Renewal::Due => {
            let key = live.identity().key_pem;
            let renewed = node_cert::issue_from_replica(&node.store, state, Some(&key))?;
            dir.save_node_cert(&renewed.cert_pem)?;
            live.replace(&renewed)?;
            tracing::info!(
                node = %state.name,
                old_not_after = %stamp(not_after),
                not_after = %stamp(live.not_after()),
                "node certificate renewed"
            );
            Ok(())
        }
    }
}

/// The node's CA and identity from its data dir, its certificate renewed
/// first (from the CA in its stopped replica) if it is due: what a command
/// run on a stopped node (`recover`) presents to the others, which refuse an
/// expired certificate — a node down past its renewal must not take live
/// members for gone because they turned its probe away.
pub fn pki_renewed_while_stopped(
    dir: &DataDir,
    state: &NodeState,
) -> Result<(String, clusterd_raft::pki::Identity), ClusterError> {
    let (ca_pem, id) = dir.load_pki()?;
    let not_after = clusterd_raft::pki::not_after(&id.cert_pem)?;
    let ca_not_after = clusterd_raft::pki::not_after(&ca_pem)?;
    if renewal(SystemTime::now(), not_after, ca_not_after, state.certificates.renew_before()) != Renewal::Due {
        return Ok((ca_pem, id));
    }
    let reader = clusterd_raft::storage::open_caught_up(&dir.db_path())
        .map_err(|e| ClusterError::Config(format!("{}: {e}", dir.db_path().display())))?;
    let renewed = node_cert::issue_from_replica(&reader, state, Some(&id.key_pem))?;
    dir.save_node_cert(&renewed.cert_pem)?;
    tracing::info!(node = %state.name, not_after = %stamp(clusterd_raft::pki::not_after(&renewed.cert_pem)?), "node certificate renewed while stopped");
    Ok((ca_pem, renewed))
}

/// Write the certificate's expiry into the node's registration if it says
/// otherwise (after a renewal, a start, or a rewrite of the record by a
/// move). Whether the registration says it now.
async fn publish(node: &RaftNode, state: &NodeState) -> Result<bool, ClusterError> {
    let key = format!("{}{}", keys::MEMBERS, state.name);
    let store_err = |e: &dyn std::fmt::Display| ClusterError::Config(e.to_string());
    // Not registered (yet, or any more): nothing to publish.
    let Some(kv) = node.store.get(&key).map_err(|e| store_err(&e))? else { return Ok(false) };
    let record: Value = serde_json::from_slice(&kv.value).map_err(|e| store_err(&e))?;
    let Some(next) = with_expiry(&record, &stamp(node.identity().not_after())) else { return Ok(true) };
    // Only over the record as read: a newer one is looked at next time.
    let txn = Txn {
        compares: vec![Compare::ModRevision(key.clone(), kv.mod_revision)],
        success: vec![Op::Put { key, value: next.to_string().into_bytes() }],
    };
    let resp = node.propose(Command::Txn(txn), PUBLISH_WAIT).await?;
    Ok(resp.failed_compare.is_none())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_certificate_is_renewed_within_its_margin_unless_the_ca_expires_first() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let s = Duration::from_secs;
        let far = now + s(10 * 365 * 86_400);
        let cases = [
            // (left, CA expiry, margin, decision)
            (now + s(20), far, s(14), Renewal::Fresh),
            (now + s(15), far, s(14), Renewal::Fresh),
            (now + s(14), far, s(14), Renewal::Due),
            (now + s(5), far, s(14), Renewal::Due),
            (now - s(60), far, s(14), Renewal::Due),
            (now + s(365 * 86_400), far, s(30 * 86_400), Renewal::Fresh),
            (now + s(29 * 86_400), far, s(30 * 86_400), Renewal::Due),
            (now + s(10), now + s(10), s(14), Renewal::CaExpiring),
            (now + s(10), now + s(5), s(14), Renewal::CaExpiring),
        ];
        for (not_after, ca, margin, want) in cases {
            assert_eq!(renewal(now, not_after, ca, margin), want, "{not_after:?} {ca:?} {margin:?}");
        }
    }

    #[test]
    fn a_short_lived_or_expired_certificate_is_due_and_a_fresh_one_is_not() {
        use clusterd_raft::pki::{not_after, Ca};
        let s = Duration::from_secs;
        let ca = Ca::generate("t").unwrap();
        let ca_not_after = not_after(ca.cert_pem()).unwrap();
        let issued = |validity| not_after(&ca.issue("n1", &[], validity).unwrap().cert_pem).unwrap();
        let now = SystemTime::now();
        let cases = [
            (issued(s(365 * 86_400)), s(30 * 86_400), Renewal::Fresh),
            (issued(s(60)), s(20), Renewal::Fresh),
            (issued(s(20)), s(30), Renewal::Due),
            (issued(s(0)), s(1), Renewal::Due),
        ];
        for (cert_not_after, margin, want) in cases {
            assert_eq!(renewal(now, cert_not_after, ca_not_after, margin), want, "{margin:?}");
        }
    }

    #[test]
    fn nodes_look_at_their_certificate_a_quarter_margin_apart() {
        let s = Duration::from_secs;
        for (before, every) in [(s(14), s(3) + Duration::from_millis(500)), (s(2), s(1)), (s(30 * 86_400), s(600))] {
            assert_eq!(check_every(&CertPolicy::new(s(365 * 86_400), before)), every, "{before:?}");
        }
    }

    #[test]
    fn the_expiry_is_written_into_the_registration_once() {
        let record = json!({"name": "n1", "raftAddr": "127.0.0.1:1", "controlPlane": true});
        let next = with_expiry(&record, "2027-01-01T00:00:00Z").unwrap();
        assert_eq!(next["certNotAfter"], "2027-01-01T00:00:00Z");
        assert_eq!(next["raftAddr"], "127.0.0.1:1", "the other fields are kept");
        assert_eq!(with_expiry(&next, "2027-01-01T00:00:00Z"), None);
        assert_eq!(with_expiry(&next, "2027-02-01T00:00:00Z").unwrap()["certNotAfter"], "2027-02-01T00:00:00Z");
    }
}
