//! `status`: the leader, the members with their roles, addresses and applied
//! revisions.

use serde_json::{json, Value};

use super::connect::ConnectOpts;
use super::error::CliError;
use super::print::{self, Output};
use crate::api::pb;

/// Run `status`.
pub async fn run(opts: &ConnectOpts, output: Option<Output>) -> Result<(), CliError> {
    let mut c = opts.connect().await?;
    let st = c.status(pb::StatusRequest {}).await?.into_inner();
    let members: Vec<Value> = st
        .members
        .iter()
        .map(|m| json!({"name": m.name, "role": m.role, "raftAddr": m.raft_addr, "apiAddr": m.api_addr, "lastApplied": m.last_applied}))
        .collect();
    match output {
        Some(Output::Json) => println!(
            "{}",
            serde_json::to_string_pretty(&json!({"leader": st.leader, "members": members})).unwrap_or_default()
        ),
        Some(Output::Yaml) => print!("{}", print::yaml(&json!({"leader": st.leader, "members": members}))),
        _ => {
            let rows: Vec<Vec<String>> = st
                .members
                .iter()
                .map(|m| {
                    vec![
                        m.name.clone(),
                        if m.name == st.leader { format!("{} (leader)", m.role) } else { m.role.clone() },
                        m.raft_addr.clone(),
                        m.api_addr.clone(),
                        m.last_applied.map(|a| a.to_string()).unwrap_or_else(|| "unreachable".into()),
                    ]
                })
                .collect();
            println!("{}", print::table(&["NAME", "ROLE", "RAFT", "API", "APPLIED"], &rows));
        }
    }
    Ok(())
}
