//! Compiles the protos without a system protoc: the clusterd API, and the one
//! etcd call the benchmark compares against.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["proto/clusterd.proto", "proto/etcd_kv.proto"], ["proto"])?;
    tonic_prost_build::configure().build_server(true).compile_fds(fds)?;
    Ok(())
}
