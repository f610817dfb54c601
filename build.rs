//! Compiles `proto/clusterd.proto` without a system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/clusterd.proto");
    let fds = protox::compile(["proto/clusterd.proto"], ["proto"])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
