//! `[auth]`: caller tokens.

use super::{Problems, invalid};
use crate::api::validate;
use serde::Deserialize;
use std::collections::HashSet;
use std::path::PathBuf;

/// Caller authentication. Off by default.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// true: every call must carry one of `tokens`. Default false.
    pub enabled: Option<bool>,
    #[serde(default)]
    pub tokens: Vec<TokenSection>,
}

/// One caller's token.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct TokenSection {
    /// Names the caller in logs and errors.
    pub name: String,
    /// The token itself; prefer `token_file`.
    pub token: Option<String>,
    /// A file holding the token (a mounted Secret).
    pub token_file: Option<PathBuf>,
    /// The indexes this caller may use; absent: all (and project-wide calls).
    pub indexes: Option<Vec<String>>,
}

/// The `[auth]` section's settings; every token's problems are recorded.
pub(super) fn settings(section: &AuthSection, p: &mut Problems) -> crate::api::auth::Auth {
    use crate::api::auth::{Auth, CallerToken};
    if !section.enabled.unwrap_or(false) {
        return Auth::default();
    }
    if section.tokens.is_empty() {
        p.push(invalid(
            "auth.tokens",
            "auth is enabled but no token is configured",
        ));
    }
    let mut names = HashSet::new();
    let mut tokens = Vec::new();
    for (i, t) in section.tokens.iter().enumerate() {
        let key = format!("auth.tokens[{i}]");
        if t.name.is_empty() || !names.insert(t.name.clone()) {
            p.push(invalid(
                &format!("{key}.name"),
                "must be non-empty and unique",
            ));
        }
        let secret = match (&t.token, &t.token_file) {
            (Some(s), None) => s.clone(),
            (None, Some(path)) => match std::fs::read_to_string(path) {
                Ok(s) => s.trim().to_string(),
                Err(e) => {
                    p.push(invalid(
                        &format!("{key}.token_file"),
                        format!("cannot read {}: {e}", path.display()),
                    ));
                    continue;
                }
            },
            _ => {
                p.push(invalid(&key, "needs exactly one of token and token_file"));
                continue;
            }
        };
        if secret.len() < 16 {
            p.push(invalid(&key, "the token must be at least 16 characters"));
        }
        for name in t.indexes.iter().flatten() {
            if let Err(e) = validate::index_name(&format!("{key}.indexes"), name) {
                p.push(invalid(&format!("{key}.indexes"), e.0));
            }
        }
        tokens.push(CallerToken {
            name: t.name.clone(),
            secret,
            indexes: t.indexes.as_ref().map(|v| v.iter().cloned().collect()),
        });
    }
    Auth { tokens }
}
