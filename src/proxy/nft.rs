//! Running `nft`: a transaction text on stdin (`nft -f -`), applied by the
//! kernel all or nothing. Optionally inside a network namespace (`ip netns
//! exec`), which is how the tests try real rulesets without touching the host.

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Most of nft's complaint kept in an error (it echoes the failing lines).
const MAX_DETAIL: usize = 4000;

/// `nft` could not be run, or refused the transaction.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The command could not be started or fed.
    #[error("{command}: {source}")]
    Run {
        /// The command line.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `nft` ran and failed (nothing of the transaction was applied).
    #[error("{command} failed: {detail}")]
    Failed {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        detail: String,
    },
}

/// Where `nft` runs: the host's network namespace, or a named one.
#[derive(Clone, Debug, Default)]
pub struct Nft {
    netns: Option<String>,
}

impl Nft {
    /// `nft` in this process's network namespace.
    pub fn host() -> Self {
        Nft { netns: None }
    }

    /// `nft` inside the network namespace `name` (`ip netns exec name nft …`).
    pub fn in_netns(name: &str) -> Self {
        Nft { netns: Some(name.to_string()) }
    }

    /// Apply a transaction (`nft -f -`); an empty one is not run.
    pub async fn apply(&self, transaction: &str) -> Result<(), NftError> {
        if transaction.is_empty() {
            return Ok(());
        }
        self.run(&["-f", "-"], Some(transaction)).await.map(|_| ())
    }

    /// `nft list table ip <table>`.
    pub async fn list_table(&self, table: &str) -> Result<String, NftError> {
        self.run(&["list", "table", "ip", table], None).await
    }

    async fn run(&self, args: &[&str], input: Option<&str>) -> Result<String, NftError> {
        let mut argv: Vec<&str> = match &self.netns {
            Some(ns) => vec!["ip", "netns", "exec", ns, "nft"],
            None => vec!["nft"],
        };
        argv.extend_from_slice(args);
        let command = argv.join(" ");
        let run_err = |source| NftError::Run { command: command.clone(), source };
        let mut child = Command::new(argv[0])
            .args(&argv[1..])
            .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(run_err)?;
        let stdin = child.stdin.take();
        let feed = async move {
            if let (Some(mut stdin), Some(text)) = (stdin, input) {
                stdin.write_all(text.as_bytes()).await?;
                stdin.shutdown().await?;
            }
            Ok::<(), std::io::Error>(())
        };
        let (fed, out) = tokio::join!(feed, child.wait_with_output());
        let out = out.map_err(run_err)?;
        if !out.status.success() {
            let mut detail = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if detail.len() > MAX_DETAIL {
                let cut = (0..=MAX_DETAIL).rev().find(|i| detail.is_char_boundary(*i)).unwrap_or(0);
                detail.truncate(cut);
                detail.push_str(" …");
            }
            return Err(NftError::Failed { command, detail });
        }
        fed.map_err(run_err)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
