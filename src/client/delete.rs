//! `delete`: objects by kind and name or from manifests, with a grace period,
//! a propagation policy, and (like kubectl) waiting until objects under
//! graceful deletion are really gone.

use clap::Args;

use super::connect::{ApiClient, ConnectOpts};
use super::error::{all_ok, outcome, CliError};
use super::{apply, kinds, manifest};
use crate::api::pb;
use crate::objects::{meta_str, Kind};

/// `delete` arguments.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Kind (with names), unless -f is given.
    pub kind: Option<String>,
    /// Names.
    pub names: Vec<String>,
    /// Manifest file, or - for standard input.
    #[arg(short, long)]
    pub filename: Option<String>,
    /// Namespace.
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Seconds a pod gets to stop (default: its terminationGracePeriodSeconds).
    #[arg(long)]
    pub grace_period: Option<i64>,
    /// Remove at once, without waiting for the containers to stop (grace period 0).
    #[arg(long)]
    pub force: bool,
    /// Wait until the objects are gone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub wait: bool,
    /// What happens to dependents: background, foreground or orphan.
    #[arg(long, default_value = "background")]
    pub cascade: String,
}

/// The propagation policy of a `--cascade` value.
pub fn propagation(cascade: &str) -> Result<&'static str, CliError> {
    match cascade {
        "background" | "true" => Ok("Background"),
        "foreground" => Ok("Foreground"),
        "orphan" | "false" => Ok("Orphan"),
        other => Err(CliError::Usage(format!(
            "invalid --cascade value \"{other}\": must be background, foreground or orphan"
        ))),
    }
}

/// Run `delete`.
pub async fn run(opts: &ConnectOpts, a: &DeleteArgs) -> Result<(), CliError> {
    let grace = if a.force { Some(0) } else { a.grace_period };
    let policy = propagation(&a.cascade)?;
    let ns = a.namespace.as_deref();
    let mut failed = 0;
    let mut targets: Vec<(&'static Kind, String, String)> = Vec::new();
    if let Some(f) = &a.filename {
        for obj in manifest::read(f)? {
            let k = match manifest::kind_of(&obj, f) {
                Ok(k) => k,
                Err(e) => {
                    manifest::report(&e);
                    failed += 1;
                    continue;
                }
            };
            let o_ns = match meta_str(&obj, "namespace") {
                "" => ns.unwrap_or("default").to_string(),
                x => x.to_string(),
            };
            targets.push((k, o_ns, meta_str(&obj, "name").to_string()));
        }
    } else {
        let kind =
            a.kind.as_deref().ok_or_else(|| CliError::Usage("you must provide a kind and names, or -f FILE".into()))?;
        let k = kinds::resolve(kind)?;
        if a.names.is_empty() {
            return Err(CliError::Usage("resource(s) were provided, but no name was specified".into()));
        }
        for n in &a.names {
            targets.push((k, ns.unwrap_or("default").to_string(), n.clone()));
        }
    }
    let mut c = opts.connect().await?;
    let mut pending = Vec::new();
    for (k, o_ns, name) in targets {
        let res = apply::delete(&mut c, k.kind, &o_ns, &name, grace, policy).await;
        if let Ok(obj) = &res {
            if crate::objects::being_deleted(obj) {
                pending.push((k, o_ns.clone(), name.clone(), meta_str(obj, "uid").to_string()));
            }
        }
        outcome(res.map(|_| format!("{} \"{}\" deleted", kinds::word(k), name)), &mut failed);
    }
    if a.wait {
        for (k, o_ns, name, uid) in pending {
            failed += usize::from(!gone(&mut c, k, &o_ns, &name, &uid).await);
        }
    }
    all_ok(failed)
}

/// Wait (up to two minutes) until the object with `uid` is gone; false if it is not.
async fn gone(c: &mut ApiClient, k: &Kind, ns: &str, name: &str, uid: &str) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let req = pb::GetRequest { kind: k.kind.into(), namespace: ns.into(), name: name.into(), linearizable: false };
        match c.get(req).await {
            Err(s) if s.code() == tonic::Code::NotFound => return true,
            Ok(o) if !o.get_ref().json.contains(uid) => return true,
            _ if std::time::Instant::now() > deadline => {
                eprintln!("error: timed out waiting for {} \"{name}\" to be deleted", kinds::word(k));
                return false;
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cascade_values() {
        for (v, want) in [("background", "Background"), ("true", "Background"), ("foreground", "Foreground")] {
            assert_eq!(propagation(v).unwrap(), want);
        }
        assert_eq!(propagation("orphan").unwrap(), "Orphan");
        assert_eq!(propagation("false").unwrap(), "Orphan");
        assert!(propagation("sideways").unwrap_err().to_string().contains("must be background, foreground or orphan"));
    }
}
