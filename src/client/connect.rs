//! Connecting the client: which config (`--config`, `$CLUSTERD_CONFIG`,
//! `~/.clusterd/config`), which credentials (client certificate or bearer
//! token), and fail-over across the servers the client knows. One channel to
//! one server is `cluster::dial`'s job, shared with a joining node.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clusterd_raft::pki;

use super::error::CliError;
use crate::api::pb;
use crate::cluster::config::{write_atomic, AdminConfig};
pub use crate::cluster::dial::{channel, connect_pinned, ApiClient, Bearer, ConnectError};

/// Where the client finds its config and server: the global flags.
#[derive(Clone, Debug, Default)]
pub struct ConnectOpts {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--server`, overriding the config's servers.
    pub server: Option<String>,
}

impl ConnectOpts {
    /// The config file: `--config`, else `$CLUSTERD_CONFIG`, else `~/.clusterd/config`.
    pub fn config_path(&self) -> PathBuf {
        if let Some(p) = &self.config {
            return p.clone();
        }
        if let Ok(p) = std::env::var("CLUSTERD_CONFIG") {
            if !p.is_empty() {
                return PathBuf::from(p);
            }
        }
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        PathBuf::from(home).join(".clusterd").join("config")
    }

    /// Connect to the first server that answers, trying the members this
    /// client saw last time after the configured ones, and remember the
    /// members it sees now.
    pub async fn connect(&self) -> Result<ApiClient, CliError> {
        let path = self.config_path();
        let config = AdminConfig::load(&path)?;
        let mut servers = match &self.server {
            Some(s) => vec![s.clone()],
            None => config.servers.clone(),
        };
        let cache = members_cache(&path);
        if let Ok(text) = std::fs::read_to_string(&cache) {
            for s in text.lines().map(str::trim).filter(|s| !s.is_empty()) {
                if !servers.iter().any(|x| x == s) {
                    servers.push(s.to_string());
                }
            }
        }
        let (mut client, _) = connect(&config, &servers).await?;
        if let Ok(resp) = client.members(pb::MembersRequest {}).await {
            let list: Vec<String> = resp.into_inner().members.into_iter().map(|m| m.api_addr).collect();
            if let Err(e) = write_atomic(&cache, list.join("\n").as_bytes(), 0o600) {
                tracing::debug!("members cache not written: {e}");
            }
        }
        Ok(client)
    }
}

/// `config.members` beside `config`: the API servers last seen.
fn members_cache(config: &Path) -> PathBuf {
    let mut name = config.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".members");
    config.with_file_name(name)
}

/// Connect with an admin config to the first server of `servers` that answers.
pub async fn connect(config: &AdminConfig, servers: &[String]) -> Result<(ApiClient, String), ConnectError> {
    let id = config.identity();
    let tls = Arc::new(pki::client_config(&config.certificate_authority, id.as_ref(), &[b"h2"])?);
    let token = if id.is_some() { "" } else { config.token.as_str() };
    let mut last = String::from("no servers configured");
    for server in servers {
        match channel(server, tls.clone()).await {
            Ok(ch) => return Ok((crate::cluster::dial::client(ch, token), server.clone())),
            Err(ConnectError::Unreachable { last: why, .. }) => last = format!("{server}: {why}"),
            Err(e) => return Err(e),
        }
    }
    Err(ConnectError::Unreachable { tried: servers.join(", "), last })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_cache_sits_beside_the_config() {
        assert_eq!(members_cache(Path::new("/h/.clusterd/config")), PathBuf::from("/h/.clusterd/config.members"));
    }
}
