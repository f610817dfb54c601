//! Kinds as the user names them on the command line: `pods`, `po`, `deploy`,
//! several at once (`cm,pods,deploy`), and how kubectl spells a kind back
//! (`deployment.apps/web`).

use crate::objects::Kind;

use super::error::CliError;

/// One kind by any of its names.
pub fn resolve(name: &str) -> Result<&'static Kind, CliError> {
    Kind::resolve(name).ok_or_else(|| CliError::Usage(format!("the server doesn't have a resource type \"{name}\"")))
}

/// A comma-separated list of kinds, as `kubectl get cm,pods,deploy` takes
/// them: in the order given, each once.
pub fn resolve_list(names: &str) -> Result<Vec<&'static Kind>, CliError> {
    let mut kinds: Vec<&'static Kind> = Vec::new();
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let kind = resolve(name)?;
        if !kinds.iter().any(|k| std::ptr::eq(*k, kind)) {
            kinds.push(kind);
        }
    }
    if kinds.is_empty() {
        return Err(CliError::Usage(format!("the server doesn't have a resource type \"{names}\"")));
    }
    Ok(kinds)
}

/// `configmap`: the lower-case kind, as `delete` and `-o name` print it.
pub fn word(kind: &Kind) -> String {
    kind.kind.to_ascii_lowercase()
}

/// `deployment.apps/web`, `pod/web`: kubectl's name of an object, with the
/// API group for kinds outside the core group.
pub fn display(kind: &Kind, name: &str) -> String {
    match kind.api_version.split_once('/') {
        Some((group, _)) => format!("{}.{group}/{name}", word(kind)),
        None => format!("{}/{name}", word(kind)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_of_kinds() {
        let cases: &[(&str, Result<&[&str], &str>)] = &[
            ("pods", Ok(&["Pod"])),
            ("cm,pods,deploy", Ok(&["ConfigMap", "Pod", "Deployment"])),
            ("po,pods,pod", Ok(&["Pod"])),
            ("deploy, rs", Ok(&["Deployment", "ReplicaSet"])),
            ("cm,", Ok(&["ConfigMap"])),
            ("cm,frobs", Err("error: the server doesn't have a resource type \"frobs\"")),
            (",", Err("error: the server doesn't have a resource type \",\"")),
        ];
        for (input, want) in cases {
            let got = resolve_list(input).map(|ks| ks.iter().map(|k| k.kind).collect::<Vec<_>>());
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{input}"),
                (Err(e), Err(want)) => assert_eq!(e.to_string(), *want, "{input}"),
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn names_as_kubectl_prints_them() {
        assert_eq!(display(resolve("deploy").unwrap(), "web"), "deployment.apps/web");
        assert_eq!(display(resolve("cm").unwrap(), "x"), "configmap/x");
        assert_eq!(display(resolve("jobs").unwrap(), "j"), "job.batch/j");
        assert_eq!(word(resolve("rs").unwrap()), "replicaset");
    }
}
