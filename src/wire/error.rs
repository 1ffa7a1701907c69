//! Pinecone's error bodies, and what a proxy in front of it may send instead.
//!
//! - data plane: `{"code": <gRPC status number>, "message": "…", "details": []}` (grpc-gateway style), whose `code`
//!   is the status Pinecone's own gRPC API would have answered;
//! - control plane: `{"error": {"code": "NOT_FOUND", "message": "…"}, "status": 404}` (its `code` is a name, not a
//!   gRPC number, and is not used);
//! - a bare JSON string (`"Unauthorized"`), plain text, an empty body, or an HTML page from a load balancer.

/// What an error body says.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorBody {
    /// Pinecone's message, or a short text standing for the body.
    pub message: String,
    /// The gRPC status number of a data-plane body (1 to 16), when it carries one.
    pub grpc_code: Option<i32>,
}

/// Longest message kept from a body that is not Pinecone's JSON.
const MAX_TEXT: usize = 1024;

pub fn parse(status: u16, body: &[u8]) -> ErrorBody {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let grpc_code = v
            .get("code")
            .and_then(serde_json::Value::as_i64)
            .filter(|c| (1..=16).contains(c))
            .map(|c| c as i32);
        let message = v
            .pointer("/error/message")
            .or_else(|| v.get("message"))
            .and_then(|m| m.as_str())
            .or_else(|| v.as_str())
            .map(str::to_string);
        if let Some(message) = message {
            return ErrorBody { message, grpc_code };
        }
        if grpc_code.is_some() {
            return ErrorBody {
                message: reason(status),
                grpc_code,
            };
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let message = if text.is_empty() {
        reason(status)
    } else if looks_like_html(text) {
        // A proxy's error page: its title says what happened; the markup says nothing to a caller.
        match html_title(text) {
            Some(title) => format!("{} (an HTML page, not Pinecone's answer)", title),
            None => format!("{} (an HTML page, not Pinecone's answer)", reason(status)),
        }
    } else {
        text.chars().take(MAX_TEXT).collect()
    };
    ErrorBody {
        message,
        grpc_code: None,
    }
}

fn reason(status: u16) -> String {
    http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error")
        .to_string()
}

fn looks_like_html(text: &str) -> bool {
    let head: String = text
        .chars()
        .take(256)
        .collect::<String>()
        .to_ascii_lowercase();
    head.starts_with("<!doctype html") || head.contains("<html")
}

fn html_title(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let start = lower.find("<title>")? + "<title>".len();
    let end = start + lower[start..].find("</title>")?;
    let title = text
        .get(start..end)?
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    (!title.is_empty()).then(|| title.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn either_plane_and_anything_else() {
        let b = parse(400, br#"{"code":3,"message":"bad dim","details":[]}"#);
        assert_eq!((b.message.as_str(), b.grpc_code), ("bad dim", Some(3)));
        let b = parse(
            404,
            br#"{"error":{"code":"NOT_FOUND","message":"no index"},"status":404}"#,
        );
        assert_eq!((b.message.as_str(), b.grpc_code), ("no index", None));
        assert_eq!(parse(401, br#""Unauthorized""#).message, "Unauthorized");
        assert_eq!(parse(502, b"").message, "Bad Gateway");
        assert_eq!(parse(500, b"oops").message, "oops");
        let b = parse(
            503,
            b"<html><head><title>503 Service Temporarily Unavailable</title></head><body><h1>x</h1></body></html>",
        );
        assert_eq!(
            b.message,
            "503 Service Temporarily Unavailable (an HTML page, not Pinecone's answer)"
        );
        assert_eq!(parse(500, br#"{"code":0,"message":"m"}"#).grpc_code, None);
        assert_eq!(parse(500, br#"{"code":99,"message":"m"}"#).grpc_code, None);
    }
}
