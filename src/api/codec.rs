//! The protobuf codec of every service (build.rs points the generated code here): prost's, with two differences
//! that make malformed or hostile messages the caller's error, not the gateway's.
//!
//! - A message that does not decode (truncated, a wrong wire type, invalid UTF-8 in a string, or nesting deeper
//!   than prost's limit of 100 levels, which only `google.protobuf.Struct` filters and metadata can reach) is
//!   INVALID_ARGUMENT naming the message, where prost's codec answers INTERNAL.
//! - Before decoding, the repeated field that makes a call large (fetch and delete `ids`, upsert `vectors`) is
//!   counted on the wire: a message with more entries than the gateway accepts in one call is refused without
//!   being decoded, because decoding expands it (42 million one-character IDs fit in a 120 MB message and take
//!   gigabytes once decoded).

use bytes::Buf;
use prost::Message;
use std::marker::PhantomData;
use tonic::Status;
use tonic::codec::{BufferSettings, DecodeBuf, EncodeBuf};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// Prost's codec, with the caller's bad messages refused as INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = Encoder<T>;
    type Decoder = Decoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        Encoder(ProstEncoder::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        Decoder(ProstDecoder::default())
    }
}

#[derive(Debug, Clone)]
pub struct Encoder<T>(ProstEncoder<T>);

impl<T: Message> tonic::codec::Encoder for Encoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        self.0.encode(item, buf)
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

#[derive(Debug, Clone)]
pub struct Decoder<U>(ProstDecoder<U>);

/// The message's own name (`FetchRequest`), for messages.
fn name<U>() -> &'static str {
    let full = std::any::type_name::<U>();
    full.rsplit("::").next().unwrap_or(full)
}

/// The repeated field to count before decoding, its field number, and the most entries one call may carry.
fn counted(message: &str) -> Option<(&'static str, u32, usize)> {
    use super::validate::{MAX_IDS_PER_CALL, MAX_UPSERT_VECTORS_PER_CALL};
    match message {
        "FetchRequest" | "DeleteRequest" => Some(("ids", 1, MAX_IDS_PER_CALL)),
        "UpsertRequest" => Some(("vectors", 1, MAX_UPSERT_VECTORS_PER_CALL)),
        _ => None,
    }
}

/// How many times field `number` occurs at the top level of an encoded message, or None when the bytes do not
/// parse (the decoder then says why).
pub fn count_field(mut bytes: &[u8], number: u32) -> Option<usize> {
    fn varint(b: &mut &[u8]) -> Option<u64> {
        prost::encoding::decode_varint(b).ok()
    }
    let mut n = 0;
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let (field, wire) = ((key >> 3) as u32, key & 7);
        match wire {
            0 => {
                varint(&mut bytes)?;
            }
            1 => bytes = bytes.get(8..)?,
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).ok()?;
                bytes = bytes.get(len..)?;
            }
            5 => bytes = bytes.get(4..)?,
            _ => return None,
        }
        if field == number {
            n += 1;
        }
    }
    Some(n)
}

impl<U: Message + Default> tonic::codec::Decoder for Decoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let message = name::<U>();
        if let Some((field, number, max)) = counted(message) {
            // tonic hands over the whole message in one piece.
            let bytes = buf.chunk();
            if bytes.len() == buf.remaining()
                && let Some(n) = count_field(bytes, number)
                && n > max
            {
                return Err(Status::invalid_argument(format!(
                    "{field}: {n} in one call; the gateway accepts at most {max} (it sends them 1,000 at a time)"
                )));
            }
        }
        self.0.decode(buf).map_err(|e| {
            let depth = if e.message().contains("recursion limit") {
                " (google.protobuf.Struct values may nest at most 100 levels deep)"
            } else {
                ""
            };
            Status::invalid_argument(format!(
                "the {message} message is not valid protobuf: {}{depth}",
                e.message()
            ))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::pinecone as p;

    #[test]
    fn counts_a_repeated_field_on_the_wire() {
        let m = p::FetchRequest {
            ids: vec!["a".into(), "b".into(), "c".into()],
            namespace: "ns".into(),
        };
        assert_eq!(count_field(&m.encode_to_vec(), 1), Some(3));
        assert_eq!(count_field(&m.encode_to_vec(), 2), Some(1));
        assert_eq!(count_field(&[0x0a, 0x05, 0x64], 1), None, "truncated");
    }

    #[test]
    fn the_message_name_is_the_type_name() {
        assert_eq!(name::<p::FetchRequest>(), "FetchRequest");
    }
}
