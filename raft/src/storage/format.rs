//! The store's on-disk format version.
//!
//! Log entries, votes and snapshot records are encoded with openraft's types; a
//! store written with another layout would decode into garbage or fail at some
//! later read. So each store records its format when created, and a store of
//! another format is refused at open with a message saying what to do — never
//! read.

use rocksdb::DB;

use super::{cf, CF_RAFT_META};

/// The format this build reads and writes: 2 = openraft 0.10 types.
pub const FORMAT: u32 = 2;

/// The format of stores made before formats were recorded (openraft 0.9 types).
const UNRECORDED: u32 = 1;

pub(crate) const KEY_FORMAT: &[u8] = b"format";

/// What to do with a store, given what it records.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A new, empty store: record [`FORMAT`] in it.
    Stamp,
    /// The store is in [`FORMAT`].
    Open,
    /// The store is in another format.
    Refuse(u32),
}

/// Decide from the recorded format (if any) and whether the store holds anything.
pub(crate) fn verdict(recorded: Option<u32>, empty: bool) -> Verdict {
    match recorded {
        Some(FORMAT) => Verdict::Open,
        Some(other) => Verdict::Refuse(other),
        None if empty => Verdict::Stamp,
        None => Verdict::Refuse(UNRECORDED),
    }
}

/// Who writes a format, for the refusal message.
pub(crate) fn writer(format: u32) -> &'static str {
    match format {
        UNRECORDED => "a clusterd built on openraft 0.9",
        f if f > FORMAT => "a newer clusterd",
        _ => "an older clusterd",
    }
}

/// The format record could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordError {
    /// RocksDB failed the read.
    #[error(transparent)]
    Db(#[from] rocksdb::Error),
    /// The record is not a 4-byte format number.
    #[error("a format record of {0} bytes")]
    Size(usize),
}

/// The format recorded in `db`, if any; an unreadable record is reported as is.
pub(crate) fn recorded(db: &DB) -> Result<Option<u32>, RecordError> {
    match db.get_cf(cf(db, CF_RAFT_META), KEY_FORMAT)? {
        None => Ok(None),
        Some(raw) => {
            let bytes: [u8; 4] = raw.as_slice().try_into().map_err(|_| RecordError::Size(raw.len()))?;
            Ok(Some(u32::from_be_bytes(bytes)))
        }
    }
}

/// The bytes recorded for [`FORMAT`].
pub(crate) fn record() -> [u8; 4] {
    FORMAT.to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_are_opened_stamped_or_refused_by_their_recorded_format() {
        let table = [
            // (recorded, empty, verdict)
            (None, true, Verdict::Stamp),
            (None, false, Verdict::Refuse(UNRECORDED)),
            (Some(FORMAT), false, Verdict::Open),
            (Some(FORMAT), true, Verdict::Open),
            (Some(FORMAT + 1), false, Verdict::Refuse(FORMAT + 1)),
            (Some(UNRECORDED), false, Verdict::Refuse(UNRECORDED)),
        ];
        for (recorded, empty, want) in table {
            assert_eq!(verdict(recorded, empty), want, "recorded {recorded:?}, empty {empty}");
        }
    }

    #[test]
    fn refusals_name_who_wrote_the_store() {
        assert_eq!(writer(UNRECORDED), "a clusterd built on openraft 0.9");
        assert_eq!(writer(FORMAT + 1), "a newer clusterd");
    }
}
