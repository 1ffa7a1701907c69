//! Logging set-up: human or JSON lines on stderr, the level from the configuration unless `RUST_LOG` is set.
//!
//! A call's line is formatted on the thread that ends the call and written by a thread of its own, through a buffer:
//! under load many lines leave in one write instead of one system call each (which cost more than the rest of the
//! line). Lines are never dropped: when 16,384 wait to be written (half a second of a busy gateway), calls wait
//! for the writer. Keep the returned
//! guard until exit: dropping it writes what is left.

use crate::config::LogFormat;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

pub fn init(format: LogFormat, level: &str) -> WorkerGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    // The writer thread flushes whenever it has nothing more to write, so a quiet gateway's lines are not held back.
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(16_384)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    // A second init (tests, embedding) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    guard
}

pub mod metrics;
pub mod trace;

/// A random id shaped like a UUID v4: request ids, and the emulator's backup and job ids.
pub fn new_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let b: [u8; 16] = rand::random();
    // Every call without a request id of its own makes one: one allocation, no formatting.
    let mut id = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            id.push('-');
        }
        let (hi, lo) = match i {
            6 => (b'4', HEX[usize::from(x & 0xf)]),
            8 => (b'a', HEX[usize::from(x & 0xf)]),
            _ => (HEX[usize::from(x >> 4)], HEX[usize::from(x & 0xf)]),
        };
        id.push(char::from(hi));
        id.push(char::from(lo));
    }
    id
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_uuid_v4_shaped_and_differ() {
        let a = super::new_id();
        let groups: Vec<&str> = a.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12],
            "{a}"
        );
        assert!(
            groups[2].starts_with('4') && groups[3].starts_with('a'),
            "{a}"
        );
        assert!(
            a.bytes()
                .all(|b| b == b'-' || b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(a, super::new_id());
    }
}
