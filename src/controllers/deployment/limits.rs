//! How far a rollout may go above (surge) and below (unavailable) the
//! Deployment's replicas: `maxSurge` and `maxUnavailable` resolved against
//! the replica count, as every strategy sees them.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// An int-or-percent of `total` (surge rounds up, unavailable rounds down).
pub fn resolve(v: Option<&IntOrString>, total: i64, round_up: bool, default: i64) -> i64 {
    match v {
        Some(IntOrString::Int(n)) => i64::from(*n),
        Some(IntOrString::String(s)) if s.ends_with('%') => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            if round_up {
                (pct * total + 99) / 100
            } else {
                pct * total / 100
            }
        }
        Some(IntOrString::String(s)) => s.parse().unwrap_or(default),
        None => default,
    }
}

/// How far a rollout may go above (surge) and below (unavailable) the
/// Deployment's replicas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Limits {
    /// Pods allowed above `replicas`.
    pub surge: i64,
    /// Pods allowed to be unavailable below `replicas`.
    pub unavailable: i64,
}

impl Limits {
    /// The limits of a strategy: Recreate surges none and may lose all;
    /// RollingUpdate defaults to a surge of 1 and no unavailability. Both
    /// zero would never move, so one pod may then be unavailable.
    pub fn of(
        recreate: bool,
        max_surge: Option<&IntOrString>,
        max_unavailable: Option<&IntOrString>,
        replicas: i64,
    ) -> Self {
        let (surge, unavailable) = if recreate {
            (0, replicas)
        } else {
            (resolve(max_surge, replicas, true, 1), resolve(max_unavailable, replicas, false, 0))
        };
        Limits { surge, unavailable: if surge == 0 && unavailable == 0 { 1 } else { unavailable } }
    }
}
