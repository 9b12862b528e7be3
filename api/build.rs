//! Compiles proto/ into the `proto` module when the `proto` feature is on. protoc comes from
//! the `protoc-bin-vendored` crate, so no system package is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo::rerun-if-changed=proto");
    if std::env::var_os("CARGO_FEATURE_PROTO").is_none() {
        return Ok(());
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    // `bytes` fields (the snapshots' histograms) as `Bytes`: slices of the received message
    // instead of a copy each, which was a tenth of the coordinator's merge profile.
    config.bytes(["."]);
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/stampede/v1/runner.proto"],
        &["proto"],
    )?;
    Ok(())
}
