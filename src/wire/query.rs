//! Query strings and path segments as Pinecone reads them.
//!
//! Pinecone decodes query values by percent-decoding only: a `+` is a plus sign, not a space (the form encoding
//! that `url`'s `query_pairs_mut` and most HTTP clients use sends a space as `+`, and an ID with a space then comes
//! back missing). So every byte outside RFC 3986's unreserved set is percent-encoded: a space is `%20`, a `+` is
//! `%2B`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986's unreserved characters.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A query string built one `key=value` at a time.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Query(String);

impl Query {
    pub fn new() -> Self {
        Query::default()
    }

    /// Appends `key=value`, the value percent-encoded (keys are fixed ASCII names).
    pub fn push(&mut self, key: &str, value: &str) {
        if !self.0.is_empty() {
            self.0.push('&');
        }
        self.0.push_str(key);
        self.0.push('=');
        self.0.extend(utf8_percent_encode(value, QUERY_VALUE));
    }

    /// Appends `key=value` when there is a value.
    pub fn push_opt(&mut self, key: &str, value: Option<impl ToString>) {
        if let Some(v) = value {
            self.push(key, &v.to_string());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Bytes that `ids=<id>&` takes in a fetch URL, the ID percent-encoded.
pub fn encoded_id_len(id: &str) -> usize {
    utf8_percent_encode(id, QUERY_VALUE)
        .map(str::len)
        .sum::<usize>()
        + "ids=&".len()
}

/// `.` and `..` cannot be sent as path segments: URL normalisation (ours, a proxy's or Pinecone's) removes them and
/// the request reaches another resource (`GET /backups/..` is `GET /`).
pub fn is_dot_segment(s: &str) -> bool {
    s == "." || s == ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaces_are_percent_twenty_and_plus_is_escaped() {
        let mut q = Query::new();
        q.push("ids", "a b");
        q.push("ids", "c+d");
        q.push("ids", "e/f&g=h");
        q.push_opt("namespace", Some("ns 1"));
        q.push_opt("prefix", None::<&str>);
        assert_eq!(
            q.as_str(),
            "ids=a%20b&ids=c%2Bd&ids=e%2Ff%26g%3Dh&namespace=ns%201"
        );
        assert_eq!(encoded_id_len("a b"), "ids=a%20b&".len());
        assert_eq!(encoded_id_len("doc1#chunk1"), "ids=doc1%23chunk1&".len());
    }

    #[test]
    fn unreserved_characters_stay_as_they_are() {
        let mut q = Query::new();
        q.push("prefix", "Doc-1.2_x~");
        assert_eq!(q.as_str(), "prefix=Doc-1.2_x~");
    }
}
