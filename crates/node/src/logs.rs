//! Log records on their way to JavaScript: the level names, and one array per batch.

use napi::threadsafe_function::ThreadSafeCallContext;
use napi::{JsObject, Result};
use zongzi_engine::{Level, LogRecord, Value};

use crate::error::invalid;

/// level_of reads a pino level name: the least severe level to log, or none for `silent`.
/// `fatal` logs errors only (the engine has nothing more severe).
pub(crate) fn level_of(name: &str) -> crate::error::Result<Option<Level>> {
    Ok(Some(match name {
        "fatal" | "error" => Level::Error,
        "warn" => Level::Warn,
        "info" => Level::Info,
        "debug" => Level::Debug,
        "trace" => Level::Trace,
        "silent" => return Ok(None),
        other => return Err(invalid(format!("unknown log level {other:?}"))),
    }))
}

/// records_to_js makes a batch one array of `{ level, msg, source, shard, replica, fields }`.
pub(crate) fn records_to_js(ctx: ThreadSafeCallContext<Vec<LogRecord>>) -> Result<Vec<JsObject>> {
    let env = ctx.env;
    let mut out = env.create_array_with_length(ctx.value.len())?;
    for (i, r) in ctx.value.into_iter().enumerate() {
        let mut o = env.create_object()?;
        o.set_named_property("level", env.create_string(r.level.name())?)?;
        o.set_named_property("msg", env.create_string(&r.msg)?)?;
        o.set_named_property("source", env.create_string(r.source)?)?;
        o.set_named_property("shard", env.create_double(r.shard as f64)?)?;
        o.set_named_property("replica", env.create_double(r.replica as f64)?)?;
        let mut fields = env.create_object()?;
        for (k, v) in r.fields {
            match v {
                Value::Str(s) => fields.set_named_property(&k, env.create_string(&s)?)?,
                Value::Num(n) => fields.set_named_property(&k, env.create_double(n)?)?,
                Value::Bool(b) => fields.set_named_property(&k, env.get_boolean(b)?)?,
            }
        }
        o.set_named_property("fields", fields)?;
        out.set_element(i as u32, o)?;
    }
    Ok(vec![out])
}
