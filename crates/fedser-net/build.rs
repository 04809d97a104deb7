//! Compiles `proto/fedser.proto` with protox (pure Rust: no protoc binary needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/fedser.proto");
    let fds = protox::compile(["proto/fedser.proto"], ["proto"])?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
