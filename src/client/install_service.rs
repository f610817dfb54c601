//! `install-service`: write the systemd unit that supervises this host's node.

use std::path::PathBuf;

use clap::Args;

use super::error::CliError;
use crate::cluster::service_unit;

/// `install-service` arguments.
#[derive(Args, Debug)]
pub struct InstallServiceArgs {
    /// The node's data directory.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Where to write the unit.
    #[arg(long, default_value = "/etc/systemd/system")]
    pub unit_dir: PathBuf,
}

/// Run `install-service`.
pub async fn run(a: &InstallServiceArgs) -> Result<(), CliError> {
    let path = service_unit::install(&a.data_dir, &a.unit_dir)?;
    let unit = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    println!("wrote {}", path.display());
    println!("stop the node if it runs in the foreground, then:");
    println!("  systemctl daemon-reload && systemctl enable --now {unit}");
    Ok(())
}
