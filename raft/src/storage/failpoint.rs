//! Fault modes of the store for tests, chosen by the environment at open (the
//! convention of the runtime's crash points: `CLUSTERD_FAILPOINT=<name>`).
//! Without the variable, or with another name, nothing changes.
//!
//! Names read here:
//! * `power-loss` — RocksDB keeps what it writes to the write-ahead log in
//!   this process's memory until the log is flushed (`manual_wal_flush`): the
//!   Raft log's sync thread and every write made with `sync` flush and sync
//!   it, unsynced writes stay in memory. A `kill -9` then loses exactly what
//!   was not synced, as a power cut loses what the page cache held, so crash
//!   tests exercise the loss of unsynced writes (a plain `kill -9` cannot:
//!   the kernel keeps the process's writes).

/// The environment variable naming the fault mode.
pub const ENV: &str = "CLUSTERD_FAILPOINT";

/// The mode in which a kill loses the writes that were not synced.
pub const POWER_LOSS: &str = "power-loss";

/// Whether the store runs in the power-loss mode (see the module).
pub(crate) fn power_loss() -> bool {
    std::env::var_os(ENV).is_some_and(|v| v == POWER_LOSS)
}
