//! Caller authentication (off by default): each call must carry a configured token, in the `api-key` metadata that
//! the official clients send or as `authorization: Bearer <token>`. A token may be limited to a set of indexes; a
//! limited token cannot make project-wide calls (listing every backup or restore job). Tokens are compared in
//! constant time and never logged.

use super::GatewayError;
use std::collections::HashSet;
use tonic::metadata::MetadataMap;

/// One caller's token.
#[derive(Clone)]
pub struct CallerToken {
    /// For logs and errors; never the secret.
    pub name: String,
    pub secret: String,
    /// None: every index.
    pub indexes: Option<HashSet<String>>,
}

impl std::fmt::Debug for CallerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallerToken")
            .field("name", &self.name)
            .field("secret", &"***")
            .field("indexes", &self.indexes)
            .finish()
    }
}

#[derive(Clone, Debug, Default)]
pub struct Auth {
    /// Empty: authentication is off.
    pub tokens: Vec<CallerToken>,
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Auth {
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The caller's token, when authentication is on.
    pub fn authenticate(&self, md: &MetadataMap) -> Result<Option<&CallerToken>, GatewayError> {
        if !self.enabled() {
            return Ok(None);
        }
        let presented = md
            .get("api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| {
                md.get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| {
                        v.strip_prefix("Bearer ")
                            .or_else(|| v.strip_prefix("bearer "))
                    })
                    .map(|t| t.trim().to_string())
            });
        let Some(presented) = presented.filter(|p| !p.is_empty()) else {
            return Err(GatewayError::Unauthenticated(
                "no caller token: send it in the `api-key` metadata or as `authorization: Bearer <token>`".into(),
            ));
        };
        // Check every token, so the time taken does not say which one came close.
        let mut found = None;
        for t in &self.tokens {
            if constant_time_eq(t.secret.as_bytes(), presented.as_bytes()) {
                found = Some(t);
            }
        }
        found
            .map(Some)
            .ok_or_else(|| GatewayError::Unauthenticated("unknown caller token".into()))
    }

    /// Whether the token may use `index` ("" for project-wide calls).
    pub fn authorize(token: Option<&CallerToken>, index: &str) -> Result<(), GatewayError> {
        let Some(t) = token else { return Ok(()) };
        match &t.indexes {
            None => Ok(()),
            Some(allowed) if index.is_empty() => Err(GatewayError::PermissionDenied(format!(
                "caller `{}` is limited to indexes {:?} and cannot make project-wide calls",
                t.name,
                sorted(allowed)
            ))),
            Some(allowed) if allowed.contains(index) => Ok(()),
            Some(allowed) => Err(GatewayError::PermissionDenied(format!(
                "caller `{}` may not use index `{index}`; it is limited to {:?}",
                t.name,
                sorted(allowed)
            ))),
        }
    }
}

fn sorted(s: &HashSet<String>) -> Vec<&String> {
    let mut v: Vec<&String> = s.iter().collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let t = CallerToken {
            name: "svc".into(),
            secret: "s3cret".into(),
            indexes: None,
        };
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
