//! `kubeconfig`: print a kubeconfig with this client's credentials and every
//! API server of the cluster, for kubectl and client libraries.

use super::connect::ConnectOpts;
use super::error::CliError;
use crate::api::pb;
use crate::cluster::config::AdminConfig;

/// Print the kubeconfig.
pub async fn run(opts: &ConnectOpts) -> Result<(), CliError> {
    let config = AdminConfig::load(&opts.config_path())?;
    let mut servers = config.servers.clone();
    let mut c = opts.connect().await?;
    let members = c.members(pb::MembersRequest {}).await?.into_inner().members;
    for m in members {
        if !servers.contains(&m.api_addr) {
            servers.push(m.api_addr);
        }
    }
    print!("{}", config.kubeconfig(&servers));
    Ok(())
}
