//! `logs`: a container's log lines, optionally followed as they come.

use std::io::Write;

use clap::Args;

use super::connect::ConnectOpts;
use super::error::CliError;
use crate::api::pb;

/// `logs` arguments.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Pod name.
    pub pod: String,
    /// Container (default: the pod's first).
    #[arg(short, long)]
    pub container: Option<String>,
    /// Keep streaming new lines.
    #[arg(short, long)]
    pub follow: bool,
    /// Lines from the end to show.
    #[arg(long)]
    pub tail: Option<i64>,
    /// The previous instance of the container.
    #[arg(short, long)]
    pub previous: bool,
    /// Namespace.
    #[arg(short, long)]
    pub namespace: Option<String>,
}

/// Run `logs`.
pub async fn run(opts: &ConnectOpts, a: &LogsArgs) -> Result<(), CliError> {
    let mut c = opts.connect().await?;
    let req = pb::LogsRequest {
        namespace: a.namespace.clone().unwrap_or_else(|| "default".into()),
        pod: a.pod.clone(),
        container: a.container.clone().unwrap_or_default(),
        follow: a.follow,
        tail: a.tail.and_then(|t| u64::try_from(t).ok()),
        previous: a.previous,
    };
    let mut stream = c.logs(req).await?.into_inner();
    while let Some(chunk) = stream.message().await? {
        let mut out = std::io::stdout().lock();
        for l in chunk.lines {
            let _ = writeln!(out, "{l}");
        }
        let _ = out.flush();
    }
    Ok(())
}
