//! What a runtime opened on a node's directory does with what an earlier run
//! left there. A sandbox is recorded before anything of it exists on the
//! host ([`SandboxPhase::Intent`]), again once its pause process runs
//! ([`SandboxPhase::Started`]), and a last time when its network is attached
//! ([`SandboxPhase::Ready`]); a container's directory is made before its
//! rootfs is mounted and gets its `meta.json` last. A daemon killed at any
//! point leaves a record naming all it made, and this decides what becomes of
//! it: only what was finished is kept (a worker adopts it); everything else is
//! removed by what the record names, and its pod gets a fresh sandbox.

use serde::{Deserialize, Serialize};

/// How far the making of a sandbox got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SandboxPhase {
    /// Recorded: its id (hence its cgroup, veth and address) is named, and
    /// nothing of it may exist yet, or a pause not yet known by its pid.
    Intent,
    /// Its pause process runs (pid recorded); its network may be half made.
    Started,
    /// Complete. Records written before phases were recorded are complete.
    #[default]
    Ready,
}

/// What a runtime finds in its directory when it opens it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    /// A sandbox record, with its phase (None: the record does not parse).
    Sandbox(Option<SandboxPhase>),
    /// A container directory: whether it has its `meta.json`, and whether
    /// the sandbox that record names is still there.
    Container {
        /// It has its `meta.json` (it was created completely).
        recorded: bool,
        /// Its sandbox's record exists.
        sandbox_known: bool,
    },
}

/// What becomes of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leftover {
    /// Left for the kubelet to adopt (or to find dead and replace).
    Keep,
    /// Removed with everything it names: processes, cgroups, veth, address, mounts.
    Remove,
}

/// The decision for one thing found.
pub fn leftover(found: Found) -> Leftover {
    match found {
        Found::Sandbox(Some(SandboxPhase::Ready)) => Leftover::Keep,
        Found::Sandbox(Some(SandboxPhase::Intent | SandboxPhase::Started) | None) => Leftover::Remove,
        Found::Container { recorded: true, sandbox_known: true } => Leftover::Keep,
        Found::Container { .. } => Leftover::Remove,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_was_finished_is_kept() {
        use Found::*;
        use Leftover::*;
        let table = [
            (Sandbox(Some(SandboxPhase::Ready)), Keep, "a complete sandbox is adopted"),
            (Sandbox(Some(SandboxPhase::Intent)), Remove, "died before or while its pause started"),
            (Sandbox(Some(SandboxPhase::Started)), Remove, "died while its network was attached"),
            (Sandbox(None), Remove, "an unreadable record still names the sandbox by its file"),
            (Container { recorded: true, sandbox_known: true }, Keep, "a created container"),
            (Container { recorded: false, sandbox_known: true }, Remove, "died between mounting and recording"),
            (Container { recorded: false, sandbox_known: false }, Remove, "half made, sandbox gone"),
            (Container { recorded: true, sandbox_known: false }, Remove, "its sandbox is gone"),
        ];
        for (found, want, why) in table {
            assert_eq!(leftover(found), want, "{found:?}: {why}");
        }
    }

    #[test]
    fn records_from_before_phases_are_complete() {
        let old: SandboxPhase = serde_json::from_str("\"Ready\"").unwrap();
        assert_eq!(old, SandboxPhase::default());
        #[derive(Deserialize)]
        struct R {
            #[serde(default)]
            phase: SandboxPhase,
        }
        let r: R = serde_json::from_str("{}").unwrap();
        assert_eq!(r.phase, SandboxPhase::Ready);
    }
}
