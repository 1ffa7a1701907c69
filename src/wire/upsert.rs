//! An upsert's REST body, encoded once.
//!
//! An upsert of 100 vectors of 1,536 dimensions is 153,600 floats to format as JSON, most of the gateway's work for
//! that call. Three parts of the stack need the encoding: batching splits by encoded size (Pinecone caps a request
//! at 2 MB), the byte limit counts the body, and the client sends it. So the API layer encodes each record once,
//! into one buffer; batches are slices of it (no copy), sizes are arithmetic, and the body is assembled with one
//! copy when it is sent. The bytes are exactly those of the protobuf JSON mapping of the whole `UpsertRequest`
//! (`{"vectors":[…],"namespace":"…"}`, the namespace left out when empty).

use crate::pb::pinecone as p;
use bytes::{BufMut, Bytes, BytesMut};

#[derive(Clone, Debug, PartialEq)]
pub struct UpsertBody {
    namespace: String,
    ids: Vec<String>,
    /// The records' JSON, comma-separated: `{"id":"a",…},{"id":"b",…}`.
    records: Bytes,
    /// Where record `i` ends in `records` (it starts one byte, the comma, after record `i - 1` ends).
    ends: Vec<usize>,
    /// The number of dense values of record `i`.
    dimensions: Vec<u32>,
}

/// `{"vectors":[` and `]` around the records, `}` at the end.
const FRAME: usize = r#"{"vectors":[]}"#.len();

impl UpsertBody {
    /// Encodes a validated request.
    pub fn encode(req: &p::UpsertRequest) -> UpsertBody {
        // About 12 bytes per formatted float: one allocation, not a doubling per record.
        let guess: usize = req
            .vectors
            .iter()
            .map(|v| 64 + v.id.len() + 12 * v.values.len())
            .sum();
        let mut out = Vec::with_capacity(guess);
        let mut ends = Vec::with_capacity(req.vectors.len());
        for (i, v) in req.vectors.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            // Serializing a generated message cannot fail: its map keys are strings.
            if serde_json::to_writer(&mut out, v).is_err() {
                out.extend_from_slice(b"{}");
            }
            ends.push(out.len());
        }
        UpsertBody {
            namespace: req.namespace.clone(),
            ids: req.vectors.iter().map(|v| v.id.clone()).collect(),
            records: Bytes::from(out),
            ends,
            dimensions: req.vectors.iter().map(|v| v.values.len() as u32).collect(),
        }
    }

    /// The first record with dense values that are not `dimension` long: its ID and its length (records without
    /// dense values are Pinecone's to judge).
    pub fn wrong_dimension(&self, dimension: u32) -> Option<(&str, u32)> {
        self.ids
            .iter()
            .zip(&self.dimensions)
            .find(|(_, d)| **d != dimension && **d > 0)
            .map(|(id, d)| (id.as_str(), *d))
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The records' IDs, in order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn start(&self, i: usize) -> usize {
        if i == 0 { 0 } else { self.ends[i - 1] + 1 }
    }

    /// `,"namespace":"…"` as encoded, or nothing for the default namespace.
    fn namespace_json(&self) -> Vec<u8> {
        if self.namespace.is_empty() {
            return Vec::new();
        }
        let mut out = br#","namespace":"#.to_vec();
        if serde_json::to_writer(&mut out, &self.namespace).is_err() {
            out.extend_from_slice(b"\"\"");
        }
        out
    }

    /// The body's length in bytes, without assembling it.
    pub fn body_len(&self) -> usize {
        let ns = self.namespace_json().len();
        if self.is_empty() {
            // `{}` or `{"namespace":"…"}`: the mapping leaves out an empty list, and then the comma.
            return 2 + ns.saturating_sub(1);
        }
        FRAME + self.records.len() + ns
    }

    /// The REST body.
    pub fn body(&self) -> Bytes {
        let ns = self.namespace_json();
        let mut out = BytesMut::with_capacity(FRAME + self.records.len() + ns.len());
        out.put_slice(b"{");
        if self.is_empty() {
            out.put_slice(ns.get(1..).unwrap_or_default());
        } else {
            out.put_slice(br#""vectors":["#);
            out.put_slice(&self.records);
            out.put_slice(b"]");
            out.put_slice(&ns);
        }
        out.put_slice(b"}");
        out.freeze()
    }

    /// Records `range` as an upsert of their own (no copy).
    fn slice(&self, range: std::ops::Range<usize>) -> UpsertBody {
        if range.is_empty() {
            return UpsertBody {
                namespace: self.namespace.clone(),
                ids: Vec::new(),
                records: Bytes::new(),
                ends: Vec::new(),
                dimensions: Vec::new(),
            };
        }
        let from = self.start(range.start);
        let to = self.ends[range.end - 1];
        UpsertBody {
            namespace: self.namespace.clone(),
            ids: self.ids[range.clone()].to_vec(),
            records: self.records.slice(from..to),
            ends: self.ends[range.clone()].iter().map(|e| e - from).collect(),
            dimensions: self.dimensions[range].to_vec(),
        }
    }

    /// Splits into upserts of at most `max` records and `max_bytes` of body each, in order; a record larger than
    /// `max_bytes` on its own goes alone (validation refuses such records before this).
    pub fn split(&self, max: usize, max_bytes: usize) -> Vec<UpsertBody> {
        let fixed = FRAME + self.namespace_json().len();
        let mut out = Vec::new();
        let mut first = 0;
        let mut bytes = fixed;
        for i in 0..self.len() {
            let own = self.ends[i] - self.start(i);
            let comma = usize::from(i > first);
            if i > first && (i - first >= max || bytes + comma + own > max_bytes) {
                out.push(self.slice(first..i));
                first = i;
                bytes = fixed + own;
            } else {
                bytes += comma + own;
            }
        }
        if first < self.len() || out.is_empty() {
            out.push(self.slice(first..self.len()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vector(id: String, dims: usize, seed: u32) -> p::Vector {
        p::Vector {
            id,
            values: (0..dims)
                .map(|d| ((seed as usize * 31 + d) % 97) as f32 / 7.0 - 3.0)
                .collect(),
            ..Default::default()
        }
    }

    fn request() -> impl Strategy<Value = p::UpsertRequest> {
        (
            proptest::collection::vec(("[a-z\"\\\\é#]{1,8}", 0usize..20, any::<u32>()), 0..30),
            prop_oneof![Just(String::new()), "[a-z\"\\\\é]{1,10}"],
        )
            .prop_map(|(vs, namespace)| p::UpsertRequest {
                vectors: vs
                    .into_iter()
                    .map(|(id, dims, seed)| vector(id, dims, seed))
                    .collect(),
                namespace,
            })
    }

    proptest! {
        /// The body is byte for byte what encoding the whole request gives, and its length is known in advance.
        #[test]
        fn the_body_is_the_mapping_of_the_request(req in request()) {
            let u = UpsertBody::encode(&req);
            let body = u.body();
            prop_assert_eq!(&body[..], &serde_json::to_vec(&req).unwrap()[..]);
            prop_assert_eq!(u.body_len(), body.len());
            prop_assert_eq!(u.ids(), &req.vectors.iter().map(|v| v.id.clone()).collect::<Vec<_>>()[..]);
        }

        /// Splitting keeps every record once, in order, within both caps, each part's body the mapping of its
        /// records, and takes as many records per part as fit.
        #[test]
        fn splits_hold_every_record_within_the_caps(req in request(), max in 1usize..10, max_bytes in 100usize..2000) {
            let u = UpsertBody::encode(&req);
            let parts = u.split(max, max_bytes);
            let mut seen = Vec::new();
            for (k, part) in parts.iter().enumerate() {
                let records = req.vectors[seen.len()..seen.len() + part.len()].to_vec();
                let whole = p::UpsertRequest { vectors: records, namespace: req.namespace.clone() };
                prop_assert_eq!(&part.body()[..], &serde_json::to_vec(&whole).unwrap()[..]);
                prop_assert_eq!(part.body_len(), part.body().len());
                prop_assert!(part.len() <= max);
                prop_assert!(part.len() == 1 || part.body_len() <= max_bytes, "{} bytes", part.body_len());
                if let Some(next) = req.vectors.get(seen.len() + part.len()).filter(|_| k + 1 < parts.len()) {
                    // The next record did not fit.
                    let mut more = whole.clone();
                    more.vectors.push(next.clone());
                    prop_assert!(part.len() == max || serde_json::to_vec(&more).unwrap().len() > max_bytes);
                }
                seen.extend(part.ids().iter().cloned());
            }
            prop_assert_eq!(seen, req.vectors.iter().map(|v| v.id.clone()).collect::<Vec<_>>());
        }
    }
}
