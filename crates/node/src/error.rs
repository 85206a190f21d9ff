//! Errors that reach JavaScript, and the argument checks that make them.
//!
//! Every error thrown or rejected by the binding is a JavaScript `Error` whose `code`
//! property is a stable code (`ERR_TIMEOUT`, …) set here, where the error is made. Engine
//! errors keep `zongzi_engine::Error::code()`; the binding adds only the codes in [`CODES`].

use std::time::Duration;

use napi::bindgen_prelude::{JsError, ToNapiValue};
use napi::{sys, JsUnknown, NapiValue};

/// Code is the stable code of an error; napi-rs makes it the JavaScript error's `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code(pub &'static str);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.0
    }
}

/// INVALID_ARGUMENT: a call's argument was not acceptable.
pub(crate) const INVALID_ARGUMENT: Code = Code("ERR_INVALID_ARGUMENT");
/// CLOSED: the host was closed.
pub(crate) const CLOSED: Code = Code("ERR_CLOSED");
/// INTERNAL: a failure inside the binding itself (N-API, a task that did not finish).
pub(crate) const INTERNAL: Code = Code("ERR_INTERNAL");

/// CODES lists the codes the binding makes itself, beside the engine's.
pub const CODES: [&str; 3] = [INVALID_ARGUMENT.0, CLOSED.0, INTERNAL.0];

/// Error is an error on its way to JavaScript, with its code.
pub(crate) type Error = napi::Error<Code>;

/// Result is the result of the binding's methods. (napi-rs recognises it by its name.)
pub(crate) type Result<T> = std::result::Result<T, Error>;

/// to_js converts an engine error, keeping its stable code.
pub(crate) fn to_js(e: zongzi_engine::Error) -> Error {
    Error::new(Code(e.code()), e.to_string())
}

/// invalid is an ERR_INVALID_ARGUMENT error.
pub(crate) fn invalid(msg: impl std::fmt::Display) -> Error {
    Error::new(INVALID_ARGUMENT, format!("invalid argument: {msg}"))
}

/// closed is the error of any call after `close()`.
pub(crate) fn closed() -> Error {
    Error::new(CLOSED, "host closed".to_string())
}

/// internal wraps a failure of N-API itself.
pub(crate) fn internal(e: napi::Error) -> Error {
    Error::new(INTERNAL, e.reason)
}

/// Answer carries the outcome of an asynchronous method to JavaScript. napi-rs rejects the
/// promise of an async method with an error whose `code` is the generic N-API status, so a
/// failure travels as this value instead and becomes the coded error on the JavaScript
/// thread, where the promise is settled.
pub struct Answer<T>(pub Result<T>);

impl<T: ToNapiValue> ToNapiValue for Answer<T> {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        match val.0 {
            Ok(v) => T::to_napi_value(env, v),
            Err(e) => {
                // SAFETY: called by napi-rs on the JavaScript thread with its env.
                let js = unsafe { JsError::from(e).into_value(env) };
                let js = unsafe { JsUnknown::from_raw_unchecked(env, js) };
                // An error made from a JavaScript value rejects the promise with that value.
                Err(napi::Error::from(js))
            }
        }
    }
}

/// answer runs an async method's body and wraps its outcome.
pub(crate) async fn answer<T>(f: impl std::future::Future<Output = Result<T>>) -> Answer<T> {
    Answer(f.await)
}

const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// id checks that a JavaScript number is a usable id: a non-negative safe integer.
pub(crate) fn id(v: f64, what: &str) -> Result<u64> {
    if !(v.is_finite() && v.fract() == 0.0 && (0.0..=MAX_SAFE_INTEGER).contains(&v)) {
        return Err(invalid(format!(
            "{what} must be a non-negative integer, got {v}"
        )));
    }
    Ok(v as u64)
}

/// timeout checks a timeout in milliseconds.
pub(crate) fn timeout(ms: f64) -> Result<Duration> {
    if !(ms.is_finite() && ms > 0.0 && ms <= 86_400_000.0) {
        return Err(invalid(format!(
            "timeout must be a positive number of milliseconds up to one day, got {ms}"
        )));
    }
    Ok(Duration::from_micros((ms * 1000.0) as u64))
}
