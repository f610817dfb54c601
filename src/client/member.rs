//! `member list|remove`: cluster membership.

use clap::Subcommand;

use super::connect::ConnectOpts;
use super::error::CliError;
use super::print;
use crate::api::pb;

/// `member` verbs.
#[derive(Subcommand, Debug)]
pub enum MemberVerb {
    /// List members.
    List,
    /// Remove a member by name.
    Remove {
        /// Node name.
        name: String,
    },
}

/// Run a `member` verb.
pub async fn run(opts: &ConnectOpts, verb: &MemberVerb) -> Result<(), CliError> {
    let mut c = opts.connect().await?;
    match verb {
        MemberVerb::List => {
            let ms = c.members(pb::MembersRequest {}).await?.into_inner().members;
            let rows: Vec<Vec<String>> =
                ms.into_iter().map(|m| vec![m.id.to_string(), m.name, m.role, m.raft_addr, m.api_addr]).collect();
            println!("{}", print::table(&["ID", "NAME", "ROLE", "RAFT", "API"], &rows));
        }
        MemberVerb::Remove { name } => {
            c.remove_member(pb::RemoveMemberRequest { name: name.clone() }).await?;
            println!("member \"{name}\" removed");
        }
    }
    Ok(())
}
