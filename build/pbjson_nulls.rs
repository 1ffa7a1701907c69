/// Rewrites pbjson's deserializers of fields without explicit presence so that `null` reads as the field's default,
/// as the protobuf JSON mapping requires: `x__ = Some(map_.next_value::<T>()?EXTRA);` becomes
/// `x__ = map_.next_value::<Option<T>>()?.map(|x| x EXTRA);` (a `None` is then the default). Panics when the generated
/// code has a shape it does not know, so a pbjson-build upgrade cannot silently drop the rule.
pub fn nullable(code: &str) -> String {
    const START: &str = "Some(";
    const CALL: &str = "map_.next_value";
    let mut out = String::with_capacity(code.len() + code.len() / 8);
    let mut rest = code;
    while let Some(at) = rest.find(START) {
        let after = &rest[at + START.len()..];
        let trimmed = after.trim_start();
        if !trimmed.starts_with(CALL) {
            out.push_str(&rest[..at + START.len()]);
            rest = after;
            continue;
        }
        out.push_str(&rest[..at]);
        let mut s = &trimmed[CALL.len()..];
        // The turbofish, if any: `::<T>` with nested angle brackets.
        let ty = if let Some(t) = s.strip_prefix("::<") {
            let mut depth = 1;
            let end = t
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '<' => depth += 1,
                        '>' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(i, _)| i)
                .expect("unbalanced turbofish in pbjson output");
            let ty = t[..end].to_string();
            s = &t[end + 1..];
            ty
        } else {
            "_".to_string()
        };
        s = s
            .strip_prefix("()?")
            .expect("pbjson output: expected `()?` after next_value");
        // EXTRA runs to the `)` that closes `Some(`.
        let mut depth = 1;
        let end = s
            .char_indices()
            .find(|&(_, c)| {
                match c {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map(|(i, _)| i)
            .expect("unbalanced parentheses in pbjson output");
        let extra = s[..end].trim();
        out.push_str(&format!(
            "map_.next_value::<::std::option::Option<{ty}>>()?"
        ));
        if !extra.is_empty() {
            out.push_str(&format!(".map(|x| x{extra})"));
        }
        rest = &s[end + 1..];
    }
    out.push_str(rest);
    assert!(
        !out.contains("Some(map_.next_value"),
        "pbjson output left a non-nullable field"
    );
    out
}
