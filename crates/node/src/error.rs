//! Mapping of engine errors and argument checks to JavaScript errors.
//!
//! Every error reaching JavaScript has a message of the form `ERR_CODE: text`; the TypeScript
//! layer turns the prefix into the error's `code` property.

use std::time::Duration;

use napi::{Error, Status};

/// to_js converts an engine error, keeping its stable code.
pub(crate) fn to_js(e: zongzi_engine::Error) -> Error {
    Error::new(Status::GenericFailure, format!("{}: {}", e.code(), e))
}

/// invalid is an ERR_INVALID_ARGUMENT error.
pub(crate) fn invalid(msg: impl std::fmt::Display) -> Error {
    Error::new(
        Status::InvalidArg,
        format!("ERR_INVALID_ARGUMENT: invalid argument: {msg}"),
    )
}

/// closed is the error of any call after `close()`.
pub(crate) fn closed() -> Error {
    Error::new(
        Status::GenericFailure,
        "ERR_CLOSED: host closed".to_string(),
    )
}

const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// id checks that a JavaScript number is a usable id: a non-negative safe integer.
pub(crate) fn id(v: f64, what: &str) -> napi::Result<u64> {
    if !(v.is_finite() && v.fract() == 0.0 && (0.0..=MAX_SAFE_INTEGER).contains(&v)) {
        return Err(invalid(format!(
            "{what} must be a non-negative integer, got {v}"
        )));
    }
    Ok(v as u64)
}

/// timeout checks a timeout in milliseconds.
pub(crate) fn timeout(ms: f64) -> napi::Result<Duration> {
    if !(ms.is_finite() && ms > 0.0 && ms <= 86_400_000.0) {
        return Err(invalid(format!(
            "timeout must be a positive number of milliseconds up to one day, got {ms}"
        )));
    }
    Ok(Duration::from_micros((ms * 1000.0) as u64))
}
