//! `scale`: set the replicas of a Deployment, ReplicaSet or StatefulSet.

use clap::Args;

use super::connect::ConnectOpts;
use super::error::CliError;
use super::{kinds, rollout};

/// `scale` arguments.
#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// KIND/NAME or KIND.
    pub target: String,
    /// NAME, when KIND is given alone.
    pub name: Option<String>,
    /// The new number of replicas.
    #[arg(long)]
    pub replicas: i64,
    /// Namespace.
    #[arg(short, long)]
    pub namespace: Option<String>,
}

/// Run `scale`.
pub async fn run(opts: &ConnectOpts, a: &ScaleArgs) -> Result<(), CliError> {
    let (kind, name) = rollout::target(&a.target, a.name.as_deref())?;
    if !matches!(kind.kind, "Deployment" | "ReplicaSet" | "StatefulSet") {
        return Err(CliError::Usage(format!("cannot scale a {}", kind.kind)));
    }
    if a.replicas < 0 {
        return Err(CliError::Usage("--replicas: Invalid value: must be greater than or equal to 0".into()));
    }
    let mut c = opts.connect().await?;
    let ns = a.namespace.clone().unwrap_or_else(|| "default".into());
    let n = a.replicas;
    rollout::modify(&mut c, kind, &ns, &name, |o| {
        o["spec"]["replicas"] = serde_json::json!(n);
        Ok(())
    })
    .await?;
    println!("{} scaled", kinds::display(kind, &name));
    Ok(())
}
