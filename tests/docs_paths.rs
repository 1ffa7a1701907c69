//! Every file or folder of this repository that the README, BENCHMARKS.md, docs/ or deploy/'s documents name in
//! backticks exists: a moved file leaves no claim pointing at nothing.
use std::path::Path;

const ROOTS: &[&str] = &[
    "src/", "tests/", "bench/", "docs/", "deploy/", "scripts/", "proto/", ".config/", ".ci/",
];

fn documents(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![root.join("README.md"), root.join("BENCHMARKS.md")];
    for dir in ["docs", "deploy", "tests/fixtures/pinecone"] {
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap().map(Result::unwrap) {
                let p = entry.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "md") {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// Backticked spans that name a path of the repository (placeholders and globs aside).
fn named_paths(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter_map(|span| span.split_whitespace().next())
        .map(|p| p.trim_end_matches([',', '.', ':', ')']))
        .filter(|p| ROOTS.iter().any(|r| p.starts_with(r)))
        .filter(|p| {
            !p.contains(['*', '{', '$', '<', '…']) && !p.contains("NAME") && !p.contains("XXXX")
        })
        .map(|p| p.split(['#', ':']).next().unwrap_or(p).to_string())
        .collect()
}

#[test]
fn every_path_the_documents_name_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut missing = Vec::new();
    let mut checked = 0;
    for doc in documents(root) {
        let text = std::fs::read_to_string(&doc).unwrap();
        for path in named_paths(&text) {
            checked += 1;
            if !root.join(&path).exists() {
                missing.push(format!(
                    "{}: {path}",
                    doc.strip_prefix(root).unwrap().display()
                ));
            }
        }
    }
    assert!(checked > 50, "only {checked} paths found");
    assert!(
        missing.is_empty(),
        "named but missing:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_path_finder_finds_paths() {
    assert_eq!(
        named_paths(
            "see `src/api/mod.rs` and `bench/results/x.json`, not `tests/*.rs` or `docs/NAME.md`"
        ),
        ["src/api/mod.rs", "bench/results/x.json"]
    );
}

/// Relative links of the README and docs/ pages, `[text](path#anchor)`.
fn links(text: &str) -> Vec<String> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .filter(|l| !l.starts_with("http") && !l.starts_with('#') && !l.contains(' '))
        .map(|l| l.split('#').next().unwrap_or(l).to_string())
        .collect()
}

/// The README is the front page (at most about 250 lines) and links every page of docs/; every relative link of
/// the README and of docs/ leads to a file that exists.
#[test]
fn the_readme_is_a_front_page_and_every_link_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.lines().count() <= 250,
        "the README has {} lines: move reference into docs/",
        readme.lines().count()
    );
    let linked = links(&readme);
    for entry in std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(Result::unwrap)
    {
        let name = format!("docs/{}", entry.file_name().to_string_lossy());
        if name.ends_with(".md") {
            assert!(linked.contains(&name), "README does not link {name}");
        }
    }
    let mut broken = Vec::new();
    let mut pages = vec![root.join("README.md")];
    pages.extend(
        std::fs::read_dir(root.join("docs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "md")),
    );
    for page in pages {
        let text = std::fs::read_to_string(&page).unwrap();
        let dir = page.parent().unwrap();
        for link in links(&text) {
            if !dir.join(&link).exists() {
                broken.push(format!("{}: {link}", page.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
