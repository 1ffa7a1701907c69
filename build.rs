//! Generates the gRPC code from proto/ with protox (no system protoc) and writes the descriptor set that server
//! reflection and the conformance test read.
use protox::prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Neither prost-build nor tonic-prost-build emits this for .proto files.
    println!("cargo:rerun-if-changed=proto");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(
        [
            "vector_service.proto",
            "pinecone_gateway/v1/backup_service.proto",
            "pinecone_gateway/v1/list_service.proto",
        ],
        ["proto"],
    )?;
    // compile_fds does not write file_descriptor_set_path, so the descriptor set is written here.
    std::fs::write(out.join("descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
