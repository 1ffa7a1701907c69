//! Fault injection, as Envoy's fault filter does it: from the emulator's options, and per request by header.
//!
//! - `x-emulator-fault-error-percent`: share of requests answered 503 before they are applied;
//! - `x-emulator-fault-throttle-percent`: share answered 429 before they are applied, with `Retry-After` when
//!   `x-emulator-fault-retry-after` (seconds) is set;
//! - `x-emulator-fault-drop-percent`: share whose connection breaks *after* the request was applied (the case in
//!   which a retry would apply it twice);
//! - `x-emulator-fault-delay-ms`: latency added before the request is handled;
//! - `x-emulator-fault-monthly-cap: read|write`: every data-plane request answered Pinecone's 429 for a plan's
//!   monthly read- or write-unit limit (a cap, not a rate limit: no `Retry-After`).

use axum::http::HeaderMap;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    pub error_percent: f64,
    pub throttle_percent: f64,
    pub throttle_retry_after_secs: Option<u64>,
    pub drop_percent: f64,
    pub delay_ms: u64,
    /// `read` or `write`: the monthly unit cap every data-plane request meets.
    pub monthly_cap: Option<String>,
}

/// What to do with one request.
#[derive(Debug, PartialEq)]
pub enum Fault {
    None,
    Error,
    Throttle(Option<u64>),
    Drop,
    /// Pinecone's 429 for the monthly read or write units.
    MonthlyCap(String),
}

impl Faults {
    /// These faults, with any header of the request overriding its value.
    pub fn with_headers(&self, h: &HeaderMap) -> Faults {
        let get = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
        };
        Faults {
            error_percent: get("x-emulator-fault-error-percent").unwrap_or(self.error_percent),
            throttle_percent: get("x-emulator-fault-throttle-percent")
                .unwrap_or(self.throttle_percent),
            throttle_retry_after_secs: get("x-emulator-fault-retry-after")
                .map(|v| v as u64)
                .or(self.throttle_retry_after_secs),
            drop_percent: get("x-emulator-fault-drop-percent").unwrap_or(self.drop_percent),
            delay_ms: get("x-emulator-fault-delay-ms")
                .map(|v| v as u64)
                .unwrap_or(self.delay_ms),
            monthly_cap: h
                .get("x-emulator-fault-monthly-cap")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_string())
                .or_else(|| self.monthly_cap.clone()),
        }
    }

    pub fn is_off(&self) -> bool {
        *self == Faults::default()
    }

    /// Rolls the dice for one request.
    pub fn pick(&self) -> Fault {
        if let Some(kind) = &self.monthly_cap {
            return Fault::MonthlyCap(kind.clone());
        }
        let roll = rand::random::<f64>() * 100.0;
        if roll < self.error_percent {
            Fault::Error
        } else if roll < self.error_percent + self.throttle_percent {
            Fault::Throttle(self.throttle_retry_after_secs)
        } else if roll < self.error_percent + self.throttle_percent + self.drop_percent {
            Fault::Drop
        } else {
            Fault::None
        }
    }
}
