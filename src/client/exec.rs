//! `exec POD [-c C] -- CMD...`: run a command in a container and exit with
//! its exit code.

use std::io::Write;

use clap::Args;

use super::connect::ConnectOpts;
use super::error::CliError;
use crate::api::pb;

/// `exec` arguments.
#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Pod name.
    pub pod: String,
    /// Container (default: the pod's first).
    #[arg(short, long)]
    pub container: Option<String>,
    /// Namespace.
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Run `exec`; a non-zero exit code of the command ends this process with it.
pub async fn run(opts: &ConnectOpts, a: &ExecArgs) -> Result<(), CliError> {
    let mut c = opts.connect().await?;
    let req = pb::ExecRequest {
        namespace: a.namespace.clone().unwrap_or_else(|| "default".into()),
        pod: a.pod.clone(),
        container: a.container.clone().unwrap_or_default(),
        command: a.command.clone(),
    };
    let r = c.exec(req).await?.into_inner();
    let _ = std::io::stdout().write_all(&r.stdout);
    let _ = std::io::stderr().write_all(&r.stderr);
    if r.exit_code != 0 {
        let _ = std::io::stdout().flush();
        eprintln!("command terminated with exit code {}", r.exit_code);
        std::process::exit(r.exit_code);
    }
    Ok(())
}
