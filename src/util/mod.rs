//! Small helpers shared across the crate: time stamps and identifiers, the
//! host's resolver settings ([`resolv`]) and time spans on command lines
//! ([`duration`]).

pub mod duration;
pub mod resolv;

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::objects::admission::CreateContext;

/// A time as Kubernetes writes it: RFC 3339, seconds, `Z`.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Now, as Kubernetes writes it.
pub fn now() -> String {
    rfc3339(Utc::now())
}

/// A time as a typed object holds it (whole seconds, as Kubernetes stores it).
pub fn time(t: DateTime<Utc>) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(t.timestamp()).unwrap_or_default())
}

/// A typed object's time as the controllers' clock reads it.
pub fn chrono_of(t: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32).unwrap_or_default()
}

/// The server-chosen values of a new object, decided once before proposing.
pub struct OwnedCreateContext {
    uid: String,
    now: String,
    suffix: String,
}

impl OwnedCreateContext {
    /// Borrow as admission's context.
    pub fn as_ref(&self) -> CreateContext<'_> {
        CreateContext { uid: &self.uid, now: &self.now, suffix: &self.suffix }
    }
}

/// A fresh uid, the current time and a random `generateName` suffix.
pub fn create_context() -> OwnedCreateContext {
    use rand::Rng;
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    let suffix = (0..5).map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char).collect();
    OwnedCreateContext { uid: uuid::Uuid::new_v4().to_string(), now: now(), suffix }
}
