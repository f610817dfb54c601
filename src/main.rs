//! The `clusterd` binary: parse, set up logging, hand over to the library.

use clap::Parser;

/// jemalloc for the whole process — Rust, and RocksDB's C++ through the
/// unprefixed `malloc`: glibc's arenas kept the peaks of a burst of writes
/// (RocksDB compactions, snapshot builds) resident for good. Measured on a
/// node written 100,000 ConfigMaps of 512 B (debug build): 525 MiB resident
/// after the writes with glibc, 335 MiB with MALLOC_ARENA_MAX=2, 209 MiB with
/// jemalloc, which returns freed pages to the system after a few seconds.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    // `clusterd shim …` forks right away: dispatch before any thread exists.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("shim") {
        std::process::exit(clusterd_runtime::shim::main(&args[2..]));
    }
    let cli = clusterd::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLUSTERD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,clusterd=info,clusterd_raft=info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    // actix on a multi-threaded tokio: actors live on the system's LocalSet,
    // Raft, the API and the transport on the pool.
    let system = actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime")
    });
    match system.block_on(clusterd::cli::run(cli)) {
        Ok(()) => Ok(()),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
