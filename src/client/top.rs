//! `top pods|nodes`: CPU and memory in use, sampled on the nodes — a pod's
//! from its containers' cgroups, a node's for the whole host.

use clap::Args;

use super::connect::ConnectOpts;
use super::error::CliError;
use super::print;
use crate::api::pb;
use crate::objects::quantity::format_bytes_mi;

/// `top` arguments.
#[derive(Args, Debug)]
pub struct TopArgs {
    /// pods or nodes.
    pub kind: String,
    /// Namespace (pods).
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// Every namespace (pods).
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
}

/// `pods` or `nodes` from any of their names.
fn resource(kind: &str) -> Result<&'static str, CliError> {
    match kind {
        "pod" | "pods" | "po" => Ok("pods"),
        "node" | "nodes" | "no" => Ok("nodes"),
        other => Err(CliError::Usage(format!("unknown resource for top: {other} (pods or nodes)"))),
    }
}

/// The table `top` prints.
pub fn table(kind: &str, all_namespaces: bool, rows: &[pb::TopRow]) -> String {
    let usage = |r: &pb::TopRow| [format!("{}m", r.cpu_millis), format_bytes_mi(r.memory_bytes)];
    if kind == "pods" && all_namespaces {
        let rows: Vec<Vec<String>> =
            rows.iter().map(|r| [vec![r.namespace.clone(), r.name.clone()], usage(r).to_vec()].concat()).collect();
        return print::table(&["NAMESPACE", "NAME", "CPU(cores)", "MEMORY(bytes)"], &rows);
    }
    let rows: Vec<Vec<String>> = rows.iter().map(|r| [vec![r.name.clone()], usage(r).to_vec()].concat()).collect();
    print::table(&["NAME", "CPU(cores)", "MEMORY(bytes)"], &rows)
}

/// Run `top`.
pub async fn run(opts: &ConnectOpts, a: &TopArgs) -> Result<(), CliError> {
    let kind = resource(&a.kind)?;
    let mut c = opts.connect().await?;
    let req = pb::TopRequest {
        kind: kind.into(),
        namespace: a.namespace.clone().unwrap_or_else(|| "default".into()),
        all_namespaces: a.all_namespaces,
    };
    let rows = c.top(req).await?.into_inner().rows;
    if rows.is_empty() {
        eprintln!("No resources found");
    } else {
        println!("{}", table(kind, a.all_namespaces, &rows));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ns: &str, name: &str, cpu: u64, mem: u64) -> pb::TopRow {
        pb::TopRow { namespace: ns.into(), name: name.into(), cpu_millis: cpu, memory_bytes: mem, node: String::new() }
    }

    #[test]
    fn tables() {
        let pods = [row("default", "web", 12, 3 << 20)];
        assert_eq!(table("pods", false, &pods), "NAME   CPU(cores)   MEMORY(bytes)\nweb    12m          3Mi");
        assert!(table("pods", true, &pods).starts_with("NAMESPACE   NAME"));
        assert!(table("nodes", true, &[row("", "n1", 250, 1 << 30)]).starts_with("NAME   CPU(cores)"));
        assert_eq!(resource("no").unwrap(), "nodes");
        assert!(resource("deploy").is_err());
    }
}
