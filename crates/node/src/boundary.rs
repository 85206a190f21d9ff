//! Conversions of engine calls, results and events into JavaScript values. Bulk data goes
//! packed (typed arrays and one buffer), because building objects through N-API is slow.

use napi::bindgen_prelude::{Float64Array, Int32Array, Uint32Array};
use napi::threadsafe_function::ThreadSafeCallContext;
use napi::{JsObject, Result};
use zongzi_engine::{Completion, Event};

use crate::machines::Call;

/// Finished proposals on their way to JavaScript; each keeps its place in the host's
/// in-flight limits until it has been turned into JavaScript values.
pub(crate) type Finished = Vec<Completion>;

pub(crate) fn call_to_js(ctx: ThreadSafeCallContext<(u64, Call)>) -> Result<Vec<JsObject>> {
    let env = ctx.env;
    let (token, call) = ctx.value;
    let mut o = env.create_object()?;
    o.set_named_property("token", env.create_double(token as f64)?)?;
    let kind = match &call {
        Call::Update { .. } => "update",
        Call::Save { .. } => "save",
        Call::Recover { .. } => "recover",
    };
    o.set_named_property("kind", env.create_string(kind)?)?;
    match call {
        Call::Update { items } => {
            // Packed: per item a shard id, an incarnation and an entry count; for all entries
            // their index, length, and one buffer of their data back to back. JavaScript
            // slices it, which is far cheaper than building objects through N-API.
            let n: usize = items.iter().map(|i| i.entries.len()).sum();
            let bytes: usize = items
                .iter()
                .flat_map(|i| i.entries.iter().map(|x| x.data.len()))
                .sum();
            let mut shard_ids = Vec::with_capacity(items.len());
            let mut incarnations = Vec::with_capacity(items.len());
            let mut counts = Vec::with_capacity(items.len());
            let mut indexes = Vec::with_capacity(n);
            let mut lengths = Vec::with_capacity(n);
            let mut data = Vec::with_capacity(bytes);
            for item in items {
                shard_ids.push(item.shard as f64);
                incarnations.push(item.incarnation as f64);
                counts.push(item.entries.len() as u32);
                for e in item.entries {
                    indexes.push(e.index as f64);
                    lengths.push(e.data.len() as u32);
                    data.extend_from_slice(&e.data);
                }
            }
            o.set_named_property("shardIds", Float64Array::new(shard_ids))?;
            o.set_named_property("incarnations", Float64Array::new(incarnations))?;
            o.set_named_property("counts", Uint32Array::new(counts))?;
            o.set_named_property("indexes", Float64Array::new(indexes))?;
            o.set_named_property("lengths", Uint32Array::new(lengths))?;
            o.set_named_property("data", env.create_buffer_with_data(data)?.into_raw())?;
        }
        Call::Save {
            shard,
            incarnation,
            path,
        } => {
            o.set_named_property("shardId", env.create_double(shard as f64)?)?;
            o.set_named_property("incarnation", env.create_double(incarnation as f64)?)?;
            o.set_named_property("path", env.create_string(&path)?)?;
        }
        Call::Recover {
            shard,
            incarnation,
            path,
            index,
        } => {
            o.set_named_property("shardId", env.create_double(shard as f64)?)?;
            o.set_named_property("incarnation", env.create_double(incarnation as f64)?)?;
            o.set_named_property("path", env.create_string(&path)?)?;
            o.set_named_property("index", env.create_double(index as f64)?)?;
        }
    }
    Ok(vec![o])
}

pub(crate) fn results_to_js(ctx: ThreadSafeCallContext<Finished>) -> Result<Vec<JsObject>> {
    let env = ctx.env;
    let n = ctx.value.len();
    // Packed like updates: tags, values, data lengths (-1 marks an error, whose code and
    // message are the next of `codes` and `errors`), and all result data back to back.
    let mut tags = Vec::with_capacity(n);
    let mut values = Vec::with_capacity(n);
    let mut lengths = Vec::with_capacity(n);
    let mut data = Vec::new();
    let mut errors = Vec::new();
    let mut codes = Vec::new();
    for c in &ctx.value {
        tags.push(c.tag as f64);
        match &c.result {
            Ok(r) => {
                values.push(r.value as f64);
                lengths.push(r.data.len() as i32);
                data.extend_from_slice(&r.data);
            }
            Err(e) => {
                values.push(0.0);
                lengths.push(-1);
                codes.push(e.code());
                errors.push(e.to_string());
            }
        }
    }
    let mut o = env.create_object()?;
    o.set_named_property("tags", Float64Array::new(tags))?;
    o.set_named_property("values", Float64Array::new(values))?;
    o.set_named_property("lengths", Int32Array::new(lengths))?;
    o.set_named_property("data", env.create_buffer_with_data(data)?.into_raw())?;
    o.set_named_property("errors", errors)?;
    o.set_named_property("codes", codes)?;
    Ok(vec![o])
}

pub(crate) fn event_to_js(ctx: ThreadSafeCallContext<Event>) -> Result<Vec<JsObject>> {
    let env = ctx.env;
    let mut o = env.create_object()?;
    let num = |v: u64| env.create_double(v as f64);
    match ctx.value {
        Event::LeaderChanged {
            shard_id,
            replica_id,
            leader_id,
            term,
        } => {
            o.set_named_property("type", env.create_string("leaderChanged")?)?;
            o.set_named_property("shardId", num(shard_id)?)?;
            o.set_named_property("replicaId", num(replica_id)?)?;
            o.set_named_property("leaderId", num(leader_id)?)?;
            o.set_named_property("term", num(term)?)?;
        }
        Event::MembershipChanged {
            shard_id,
            replica_id,
            membership: m,
        } => {
            o.set_named_property("type", env.create_string("membershipChanged")?)?;
            o.set_named_property("shardId", num(shard_id)?)?;
            o.set_named_property("replicaId", num(replica_id)?)?;
            o.set_named_property(
                "voters",
                m.voters.iter().map(|v| *v as f64).collect::<Vec<_>>(),
            )?;
            o.set_named_property(
                "nonVoters",
                m.non_voters.iter().map(|v| *v as f64).collect::<Vec<_>>(),
            )?;
        }
        Event::ReplicaFailed {
            shard_id,
            replica_id,
            incarnation,
            error,
        } => {
            o.set_named_property("type", env.create_string("replicaFailed")?)?;
            o.set_named_property("shardId", num(shard_id)?)?;
            o.set_named_property("replicaId", num(replica_id)?)?;
            o.set_named_property("incarnation", num(incarnation)?)?;
            o.set_named_property("error", env.create_string(&error)?)?;
        }
        Event::ReplicaRemoved {
            shard_id,
            replica_id,
            incarnation,
        } => {
            o.set_named_property("type", env.create_string("replicaRemoved")?)?;
            o.set_named_property("shardId", num(shard_id)?)?;
            o.set_named_property("replicaId", num(replica_id)?)?;
            o.set_named_property("incarnation", num(incarnation)?)?;
        }
        Event::HostFailed { error } => {
            o.set_named_property("type", env.create_string("hostFailed")?)?;
            o.set_named_property("error", env.create_string(&error)?)?;
        }
    }
    Ok(vec![o])
}
