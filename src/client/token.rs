//! `token create`: a join token for new nodes.

use clap::Subcommand;

use super::connect::ConnectOpts;
use super::error::CliError;
use crate::api::pb;

/// `token` verbs.
#[derive(Subcommand, Debug)]
pub enum TokenVerb {
    /// Print a new join token.
    Create {
        /// How long the token stays valid, in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl: u64,
    },
}

/// Run a `token` verb.
pub async fn run(opts: &ConnectOpts, verb: &TokenVerb) -> Result<(), CliError> {
    match verb {
        TokenVerb::Create { ttl } => {
            let mut c = opts.connect().await?;
            let token = c.create_token(pb::CreateTokenRequest { ttl_seconds: *ttl }).await?.into_inner().token;
            println!("{token}");
            Ok(())
        }
    }
}
