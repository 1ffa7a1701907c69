//! docs/clients.md quotes the code the client tests run: every code block there names its file on its first line
//! (`# from PATH` or `// from PATH`), and the rest of the block must be in that file as written. A guide whose
//! examples drift from the tested scripts fails here.

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// (file, quoted code) for every fenced block of `doc`.
fn blocks(doc: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if !line.starts_with("```") {
            continue;
        }
        let mut body: Vec<&str> = Vec::new();
        for l in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            body.push(l);
        }
        let first = body.first().copied().unwrap_or_default();
        let path = first
            .strip_prefix("# from ")
            .or_else(|| first.strip_prefix("// from "))
            .unwrap_or_else(|| panic!("a block of docs/clients.md names no file: {first:?}"));
        out.push((path.trim().to_string(), body[1..].join("\n")));
    }
    out
}

#[test]
fn every_example_of_the_clients_guide_is_in_the_code_the_tests_run() {
    let doc = std::fs::read_to_string(format!("{ROOT}/docs/clients.md")).unwrap();
    let blocks = blocks(&doc);
    assert!(blocks.len() >= 8, "{} blocks", blocks.len());
    for (path, code) in &blocks {
        assert!(!code.trim().is_empty(), "an empty block from {path}");
        let source = std::fs::read_to_string(format!("{ROOT}/{path}"))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(
            source.contains(code.as_str()),
            "docs/clients.md quotes {path}, which no longer has:\n{code}"
        );
    }
    // Each language the client tests cover has its section, and each shows the retry advice being read.
    for language in [
        "grpcio-tools",
        "`pinecone[grpc]` 7.x and 8.x",
        "10.x",
        "Node.js",
        "## Go",
        "## Java",
    ] {
        assert!(doc.contains(language), "no section for {language}");
    }
    for (file, reader) in [
        ("tests/python/retry_advice.py", "grpc-retry-pushback-ms"),
        ("tests/node/retry_advice.js", "grpc-retry-pushback-ms"),
        ("tests/go/client.go", "grpc-retry-pushback-ms"),
        ("tests/java/Client.java", "PUSHBACK"),
    ] {
        assert!(
            blocks
                .iter()
                .any(|(p, c)| p == file && c.contains(reader) && c.contains("RetryInfo")),
            "the guide does not show how {file} reads the retry advice"
        );
    }
}
