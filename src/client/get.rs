//! `get`: list objects of one or more kinds (`get cm,pods,deploy`), or show
//! some by name, as tables, JSON, YAML or names; `-w` goes on watching.

use clap::Args;
use serde_json::{json, Value};

use super::connect::{ApiClient, ConnectOpts};
use super::error::{all_ok, CliError};
use super::print::{self, Listing, Output};
use super::{kinds, watch};
use crate::api::pb;
use crate::objects::{meta_str, Kind};

/// `get` flags.
#[derive(Args, Debug)]
pub struct GetArgs {
    /// Kind: pods, po, deployment, cm, ...
    pub kind: String,
    /// Name (default: list).
    pub name: Option<String>,
    /// Namespace.
    #[arg(short, long)]
    pub namespace: Option<String>,
    /// All namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector.
    #[arg(long)]
    pub field_selector: Option<String>,
    /// Output format.
    #[arg(short, long)]
    pub output: Option<Output>,
    /// After listing, watch for changes.
    #[arg(short, long)]
    pub watch: bool,
}

fn parse(json: &str) -> Result<Value, CliError> {
    serde_json::from_str(json).map_err(|e| CliError::Usage(e.to_string()))
}

/// Run `get`.
pub async fn run(opts: &ConnectOpts, a: &GetArgs) -> Result<(), CliError> {
    let kinds = kinds::resolve_list(&a.kind)?;
    if a.watch && kinds.len() > 1 {
        return Err(CliError::Usage(format!(
            "watch is only supported on individual resources and resource collections, but {} resources were found",
            kinds.len()
        )));
    }
    let mut c = opts.connect().await?;
    let ns = if a.all_namespaces { String::new() } else { a.namespace.clone().unwrap_or_else(|| "default".into()) };
    match &a.name {
        Some(name) => by_name(&mut c, &kinds, &ns, name, a).await,
        None => list(&mut c, &kinds, &ns, a).await,
    }
}

/// `get KIND[,KIND...] NAME`: the object of that name of each kind.
async fn by_name(
    c: &mut ApiClient,
    kinds: &[&'static Kind],
    ns: &str,
    name: &str,
    a: &GetArgs,
) -> Result<(), CliError> {
    let mut found = Vec::new();
    let mut failed = 0;
    for kind in kinds {
        let req =
            pb::GetRequest { kind: kind.kind.into(), namespace: ns.into(), name: name.into(), linearizable: false };
        match c.get(req).await {
            Ok(obj) => found.push((*kind, parse(&obj.into_inner().json)?)),
            Err(s) if kinds.len() > 1 => {
                eprintln!("{}", CliError::Server(s));
                failed += 1;
            }
            Err(s) => return Err(s.into()),
        }
    }
    let with_kind = kinds.len() > 1;
    print_groups(&found, a.output, Listing { output: a.output, all_namespaces: false, header: true, with_kind });
    if a.watch {
        if let Some((kind, obj)) = found.first() {
            let sel = format!("metadata.name={name}");
            let rv = meta_str(obj, "resourceVersion").parse().unwrap_or(0);
            let how = Listing { output: a.output, all_namespaces: false, header: false, with_kind: false };
            watch::follow(c, kind, ns, "", &sel, rv, how).await?;
        }
    }
    all_ok(failed)
}

/// `get KIND[,KIND...]`: list each kind in turn.
async fn list(c: &mut ApiClient, kinds: &[&'static Kind], ns: &str, a: &GetArgs) -> Result<(), CliError> {
    let (labels, fields) = (a.selector.clone().unwrap_or_default(), a.field_selector.clone().unwrap_or_default());
    let mut lists = Vec::new();
    let mut revision = 0;
    for kind in kinds {
        let req = pb::ListRequest {
            kind: kind.kind.into(),
            namespace: ns.into(),
            label_selector: labels.clone(),
            field_selector: fields.clone(),
            linearizable: false,
        };
        let list = c.list(req).await?.into_inner();
        revision = list.resource_version;
        lists.push((*kind, parse(&list.json)?));
    }
    let single = lists.len() == 1;
    match a.output {
        Some(Output::Json) | Some(Output::Yaml) => {
            let value = if single { lists.remove(0).1 } else { combined(&lists) };
            if a.output == Some(Output::Json) {
                println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default());
            } else {
                print!("{}", print::yaml(&value));
            }
        }
        out => {
            let groups: Vec<(&'static Kind, Value)> = lists
                .iter()
                .flat_map(|(k, l)| l["items"].as_array().into_iter().flatten().map(move |i| (*k, i.clone())))
                .collect();
            let how = Listing { output: out, all_namespaces: a.all_namespaces, header: true, with_kind: !single };
            if !groups.is_empty() {
                print_groups(&groups, out, how);
            } else if a.watch {
                // The header, for the lines the watch adds.
                print!("{}", print::objects(kinds[0], &[], how, chrono::Utc::now()));
            } else if kinds.iter().any(|k| k.namespaced) && !a.all_namespaces {
                eprintln!("No resources found in {ns} namespace.");
            } else {
                eprintln!("No resources found");
            }
        }
    }
    if a.watch {
        let how = Listing { output: a.output, all_namespaces: a.all_namespaces, header: false, with_kind: false };
        watch::follow(c, kinds[0], ns, &labels, &fields, revision, how).await?;
    }
    Ok(())
}

/// Print objects grouped by kind, one table per kind with a blank line between,
/// as kubectl prints `get cm,pods`.
fn print_groups(objects: &[(&'static Kind, Value)], output: Option<Output>, how: Listing) {
    if matches!(output, Some(Output::Json) | Some(Output::Yaml)) && objects.len() > 1 {
        let lists: Vec<(&'static Kind, Value)> =
            objects.iter().map(|(k, o)| (*k, json!({ "items": [o.clone()] }))).collect();
        let value = combined(&lists);
        match output {
            Some(Output::Json) => println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default()),
            _ => print!("{}", print::yaml(&value)),
        }
        return;
    }
    let now = chrono::Utc::now();
    let mut first = true;
    for group in objects.chunk_by(|a, b| std::ptr::eq(a.0, b.0)) {
        let items: Vec<Value> = group.iter().map(|(_, o)| o.clone()).collect();
        let text = print::objects(group[0].0, &items, how, now);
        if !first && how.header && !matches!(output, Some(Output::Name)) {
            println!();
        }
        first = false;
        print!("{text}");
    }
}

/// Several kinds' lists as one `List`, as kubectl prints `get cm,pods -o json`.
pub fn combined(lists: &[(&'static Kind, Value)]) -> Value {
    let items: Vec<Value> = lists
        .iter()
        .flat_map(|(kind, list)| {
            list["items"].as_array().into_iter().flatten().map(move |i| {
                let mut i = i.clone();
                if i.get("kind").is_none() {
                    i["kind"] = json!(kind.kind);
                    i["apiVersion"] = json!(kind.api_version);
                }
                i
            })
        })
        .collect();
    json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_kinds_make_one_list_with_kinds_on_items() {
        let cm = kinds::resolve("cm").unwrap();
        let deploy = kinds::resolve("deploy").unwrap();
        let lists = vec![
            (cm, json!({"items": [{"metadata": {"name": "a"}}]})),
            (deploy, json!({"items": [{"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "web"}}]})),
        ];
        let all = combined(&lists);
        assert_eq!(all["kind"], "List");
        let kinds: Vec<&str> = all["items"].as_array().unwrap().iter().map(|i| i["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["ConfigMap", "Deployment"]);
        assert_eq!(all["items"][0]["apiVersion"], "v1");
    }

    #[test]
    fn tables_of_several_kinds_name_the_kind() {
        let now = chrono::Utc::now();
        let deploy = kinds::resolve("deploy").unwrap();
        let d = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1}});
        let how = Listing { header: true, with_kind: true, ..Default::default() };
        let text = print::objects(deploy, std::slice::from_ref(&d), how, now);
        assert!(text.lines().nth(1).unwrap().starts_with("deployment.apps/web "), "{text}");
        let text = print::objects(deploy, &[d], Listing { header: true, ..Default::default() }, now);
        assert!(text.lines().nth(1).unwrap().starts_with("web "), "{text}");
    }
}
