//! `clusterd snapshot restore`: a new one-voter cluster from a snapshot file.
//!
//! The file is read whole and checked before anything is written. Then the
//! node is made as `init` makes one (fresh data directory, certificates, node
//! state, admin credentials), except that its store is imported from the file
//! at the file's revision instead of bootstrapped: every object keeps its
//! resourceVersion, and revisions go on from there. The cluster gets a new CA
//! and admin credentials, or with `keep_ca` the CA (and admin token) recorded
//! in the snapshot, so that clients and node certificates of the old cluster
//! still work. Node registrations are not in the file: other nodes join the
//! restored one as they would join any cluster.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use clusterd_raft::pki::Ca;
use clusterd_raft::storage::Import;
use clusterd_raft::{Command, KeyValue, Member, Op, Txn};

use super::init::{add_object, join_token_expiration, lead, member_record, FirstNode};
use super::run::{prepare, start_raft};
use super::snapshot_file::{self, left_out, Reader, Summary};
use super::{ClusterError, NodeArgs};
use crate::api::auth::hash_token;
use crate::api::keys;
use crate::api::tokens::JoinToken;
use crate::objects::conventions::CLUSTER_CONFIG_KEY;
use crate::objects::network::ServiceNetwork;

fn file_err(file: &Path, e: impl std::fmt::Display) -> ClusterError {
    ClusterError::Config(format!("{}: {e}; nothing was restored", file.display()))
}

/// Check the whole file; return its summary and the CA it records.
fn check(file: &Path) -> Result<(Summary, Option<Ca>), ClusterError> {
    let f = File::open(file).map_err(|source| ClusterError::Io { path: file.display().to_string(), source })?;
    let mut ca = None;
    let summary = snapshot_file::verify(BufReader::new(f), |kv| {
        if kv.key == keys::CA {
            ca = Some(kv.value);
        }
    })
    .map_err(|e| file_err(file, e))?;
    let ca = match ca {
        Some(raw) => Some(serde_json::from_slice(&raw).map_err(|e| file_err(file, format!("its CA record: {e}")))?),
        None => None,
    };
    Ok((summary, ca))
}

/// Import the file's keys into a new store at `db`, with `id` its one voter.
fn import(file: &Path, db: &Path, revision: u64, id: u64, member: Member) -> Result<u64, ClusterError> {
    let f = File::open(file).map_err(|source| ClusterError::Io { path: file.display().to_string(), source })?;
    let mut reader = Reader::new(BufReader::new(f)).map_err(|e| file_err(file, e))?;
    let failed = |e: &dyn std::fmt::Display| ClusterError::Config(format!("restore into {}: {e}", db.display()));
    let mut store = Import::create(db, revision).map_err(|e| failed(&e))?;
    while let Some(kv) = reader.entry().map_err(|e| file_err(file, e))? {
        if !left_out(&kv.key) {
            store.put(kv).map_err(|e| failed(&e))?;
        }
    }
    // The file was checked, but it is read again: it must not have changed since.
    reader.finish().map_err(|e| file_err(file, e))?;
    store.finish(id, member).map_err(|e| failed(&e))
}

/// Make a new one-voter cluster in `args.data_dir` from the snapshot `file`
/// and run its node until a signal.
pub async fn restore(file: &Path, keep_ca: bool, args: NodeArgs) -> Result<(), ClusterError> {
    let (summary, old_ca) = check(file)?;
    let ca = match (keep_ca, old_ca) {
        (true, Some(ca)) => ca,
        (true, None) => return Err(file_err(file, "--keep-ca: the snapshot holds no CA")),
        (false, _) => Ca::generate(&args.name)?,
    };
    let (dir, listener, api_addr, raft_addr) = prepare(&args).await?;
    let first = FirstNode::new(&args, dir, ca, raft_addr, api_addr)?;
    let state = &first.state;
    let member = first.member();
    let revision = summary.header.revision;
    let db = first.dir.db_path();
    let imported = match import(file, &db, revision, state.id, member) {
        Ok(n) => n,
        Err(e) => {
            // Leave no half-made store behind: the data directory can be used again.
            let _ = std::fs::remove_dir_all(&db);
            return Err(e);
        }
    };
    let node = start_raft(&first.dir, state, first.ca.cert_pem(), &first.node_id, &[]).await?;
    lead(&node).await?;

    // This node's registration, a join token, and unless the CA is kept the
    // new CA and admin token.
    let mut txn = Txn::ops(vec![member_record(state)]);
    let admin_token = if keep_ca {
        String::new()
    } else {
        let token = hex::encode(rand::random::<[u8; 24]>());
        let ca = serde_json::to_vec(&first.ca).map_err(|e| ClusterError::Config(e.to_string()))?;
        txn.success.push(Op::Put { key: keys::CA.into(), value: ca });
        txn.success.push(Op::Put { key: keys::ADMIN_TOKEN.into(), value: hash_token(&token).into_bytes() });
        token
    };
    let join = JoinToken::generate(&first.ca.fingerprint()?);
    let settings: Value = node
        .store
        .get(CLUSTER_CONFIG_KEY)
        .ok()
        .flatten()
        .and_then(|kv: KeyValue| serde_json::from_slice(&kv.value).ok())
        .unwrap_or_default();
    add_object(&mut txn, join.secret_object(&join_token_expiration()), &ServiceNetwork::from_settings(&settings))?;
    node.propose(Command::Txn(txn), Duration::from_secs(30)).await?;

    println!(
        "restored {imported} keys at revision {revision} from {} (taken {} on node {})",
        file.display(),
        summary.header.created,
        if summary.header.node.is_empty() { "?" } else { &summary.header.node }
    );
    if keep_ca {
        println!("the cluster keeps its CA: existing client and node certificates stay valid");
    }
    first.serve(node, listener, admin_token, &join, "cluster restored").await
}
