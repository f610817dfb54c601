//! `status`: the leader, the members with their roles, addresses, applied
//! revisions and certificate expiries, and the expiry of the client
//! certificate this command used.

use serde_json::{json, Value};

use clusterd_raft::pki;

use super::connect::ConnectOpts;
use super::error::CliError;
use super::print::{self, Output};
use crate::api::pb;
use crate::cluster::config::AdminConfig;

/// Run `status`.
pub async fn run(opts: &ConnectOpts, output: Option<Output>) -> Result<(), CliError> {
    let mut c = opts.connect().await?;
    let st = c.status(pb::StatusRequest {}).await?.into_inner();
    let client = client_certificate(&AdminConfig::load(&opts.config_path())?);
    let members: Vec<Value> = st
        .members
        .iter()
        .map(|m| json!({"name": m.name, "role": m.role, "raftAddr": m.raft_addr, "apiAddr": m.api_addr, "lastApplied": m.last_applied, "certNotAfter": m.cert_not_after}))
        .collect();
    let doc = json!({"leader": st.leader, "members": members, "client": client});
    match output {
        Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default()),
        Some(Output::Yaml) => print!("{}", print::yaml(&doc)),
        _ => {
            let now = chrono::Utc::now();
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
                        expiry(&m.cert_not_after, now),
                    ]
                })
                .collect();
            println!("{}", print::table(&["NAME", "ROLE", "RAFT", "API", "APPLIED", "CERT EXPIRES"], &rows));
            match client["certNotAfter"].as_str() {
                Some(t) => println!(
                    "client certificate: {}, expires {}",
                    client["user"].as_str().unwrap_or("?"),
                    expiry(t, now)
                ),
                None => println!("client: bearer token (no certificate)"),
            }
        }
    }
    Ok(())
}

/// Who the config's client certificate names and when it expires (nulls
/// for a config with a bearer token only).
fn client_certificate(config: &AdminConfig) -> Value {
    let Some(id) = config.identity() else { return json!({"user": null, "certNotAfter": null}) };
    let user = pki::certs(&id.cert_pem).ok().and_then(|c| c.first().and_then(|der| pki::common_name(der.as_ref())));
    let not_after = pki::not_after(&id.cert_pem).ok().map(crate::cluster::stamp);
    json!({"user": user, "certNotAfter": not_after})
}

/// An expiry as the table shows it: the time, marked if it has passed;
/// `unknown` if the node has not published it.
fn expiry(not_after: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    match chrono::DateTime::parse_from_rfc3339(not_after) {
        Ok(t) if t <= now => format!("{not_after} (expired)"),
        Ok(_) => not_after.to_string(),
        Err(_) => "unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiries_are_shown_and_marked_once_passed() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").unwrap().to_utc();
        for (t, shown) in [
            ("2027-12-01T00:00:00Z", "2027-12-01T00:00:00Z"),
            ("2026-11-30T23:59:59Z", "2026-11-30T23:59:59Z (expired)"),
            ("", "unknown"),
        ] {
            assert_eq!(expiry(t, now), shown);
        }
    }

    #[test]
    fn the_client_certificate_names_its_user_and_expiry() {
        let ca = pki::Ca::generate("t").unwrap();
        let id = ca.issue_client("admin", "system:masters", pki::CLIENT_VALIDITY).unwrap();
        let config = AdminConfig {
            api_version: "clusterd.io/v1".into(),
            kind: "Config".into(),
            servers: vec![],
            certificate_authority: ca.cert_pem().into(),
            client_certificate: id.cert_pem.clone(),
            client_key: id.key_pem,
            token: String::new(),
        };
        let got = client_certificate(&config);
        assert_eq!(got["user"], "admin");
        let expected = crate::cluster::stamp(pki::not_after(&id.cert_pem).unwrap());
        assert_eq!(got["certNotAfter"], expected.as_str());
        let token_only = AdminConfig { client_certificate: String::new(), token: "t".into(), ..config };
        assert_eq!(client_certificate(&token_only)["certNotAfter"], Value::Null);
    }
}
