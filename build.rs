//! Generates the gRPC code from proto/ with protox (no system protoc), the protobuf JSON mapping of Pinecone's
//! data-plane messages with pbjson (Pinecone's REST data plane is that mapping), and writes the descriptor set that
//! server reflection and the conformance test read.
use protox::prost::Message;
use protox::prost_reflect::prost_types::{DescriptorProto, FileDescriptorSet};

#[path = "build/pbjson_nulls.rs"]
mod pbjson_nulls;

/// pbjson-build needs a package; Pinecone's data-plane proto has none (its wire paths are `/VectorService/…`). The
/// JSON mapping does not depend on the package, so the JSON code is generated from a copy placed in this package,
/// and included into the package-less module, where the type names are the same.
const JSON_PACKAGE: &str = "pinecone";

fn requalify(message: &mut DescriptorProto) {
    for field in &mut message.field {
        if let Some(t) = &field.type_name
            && t.starts_with('.')
            && !t.starts_with(".google.")
        {
            field.type_name = Some(format!(".{JSON_PACKAGE}{t}"));
        }
    }
    for nested in &mut message.nested_type {
        requalify(nested);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Neither prost-build nor tonic-prost-build emits this for .proto files.
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=build");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile(
        [
            "vector_service.proto",
            "pinecone_gateway/v1/backup_service.proto",
            "pinecone_gateway/v1/list_service.proto",
        ],
        ["proto"],
    )?;
    let encoded = fds.encode_to_vec();
    // compile_fds does not write file_descriptor_set_path, so the descriptor set is written here.
    std::fs::write(out.join("descriptor.bin"), &encoded)?;

    let mut json_fds = FileDescriptorSet::decode(encoded.as_slice())?;
    for file in json_fds.file.iter_mut().filter(|f| f.package().is_empty()) {
        file.package = Some(JSON_PACKAGE.into());
        for message in &mut file.message_type {
            requalify(message);
        }
    }
    let mut json = pbjson_build::Builder::new();
    // Struct, Value and ListValue come from pbjson-types, which carries their JSON mapping. Unknown fields are
    // ignored, as the mapping allows: Pinecone adds fields within an API version.
    json.register_descriptors(&json_fds.encode_to_vec())?
        .ignore_unknown_fields();
    // The gateway's own messages get the mapping too: the contract tests compare answers as JSON.
    let prefixes = [format!(".{JSON_PACKAGE}"), ".pinecone_gateway".to_string()];
    for (package, code) in json.generate(&prefixes, |_| Ok(Vec::new()))? {
        // Numbers through the gateway's own reader (src/wire/number.rs says why).
        let code = pbjson_nulls::nullable(std::str::from_utf8(&code)?).replace(
            "::pbjson::private::NumberDeserialize",
            "crate::wire::number::Number",
        );
        let code = if package.to_string() == JSON_PACKAGE {
            saturating_counts(code)?
        } else {
            code
        };
        std::fs::write(out.join(format!("{package}.serde.rs")), code)?;
    }

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Malformed and oversized messages are the caller's error (src/api/codec.rs).
        .codec_path("crate::api::codec::Codec")
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(fds)?;
    Ok(())
}

/// Counts that Pinecone's REST API sends as 64-bit integers into `uint32` fields of its proto (`totalVectorCount`,
/// `vectorCount`, `upsertedCount`) are read by `wire::number::Count`, which saturates instead of failing the whole
/// answer. Fails the build when the generated code no longer has the shape this rewrites.
fn saturating_counts(code: String) -> Result<String, Box<dyn std::error::Error>> {
    const FROM: &str = "crate::wire::number::Number<_>";
    const TO: &str = "crate::wire::number::Count";
    let mut out = code;
    for field in ["total_vector_count", "vector_count", "upserted_count"] {
        let target = format!("{field}__ = ");
        let mut at = 0;
        let mut found = false;
        while let Some(i) = out[at..].find(&target) {
            let start = at + i;
            let end = start + out[start..].find(';').ok_or("no end of statement")?;
            let statement = out[start..end].replace(FROM, TO);
            found |= statement.contains(TO);
            out.replace_range(start..end, &statement);
            at = start + statement.len();
        }
        if !found {
            return Err(
                format!("no `{field}` read through {FROM} in the generated JSON code").into(),
            );
        }
    }
    Ok(out)
}
