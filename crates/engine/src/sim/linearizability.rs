//! Linearizability checker for histories of reads and writes on independent registers.
//!
//! The fault simulation records every client operation with the time it was invoked and the
//! time its response arrived (or that its outcome is unknown), then asks [`check`] whether one
//! total order of the operations explains every response while respecting real time: an
//! operation that returned before another was invoked must come first.
//!
//! Registers are independent, so the history is split by key and each key is checked alone.
//! Per key the search is Wing & Gong's, with Lowe's memoization (as in porcupine):
//!
//! - Each operation contributes a call event and a return event. The events are sorted by
//!   time, calls before returns at equal times (so intervals that only touch count as
//!   concurrent), and kept in a doubly linked list.
//! - Walking the list from its head, each call event passed names an operation that may be
//!   linearized next, since no pending operation returned before it was invoked. If the
//!   register accepts it, the operation is linearized: both its events are unlinked, the
//!   previous state goes on an undo stack, and the walk restarts from the head.
//! - Reaching a return event means its operation can no longer follow the ones chosen so far,
//!   so the last choice is undone (its events relinked, the state restored) and the walk
//!   resumes after that choice. With nothing left to undo, no linearization exists; once the
//!   list is empty, one has been found.
//! - Each pair (set of linearized operations, register state) is explored at most once: what
//!   can still happen depends on nothing else, so a pair seen before leads nowhere new. The
//!   set is a bitset over the key's operations.
//!
//! An operation with an unknown outcome returns at +infinity: it may take effect anywhere after
//! its call, and "after everything" is the same as never. Left as they are, many such writes
//! make the search try every subset of them, so they are narrowed first, which changes no
//! verdict. An unknown write whose value no read saw is dropped: no read depends on it, so
//! removing it from a linearization leaves a valid one, and never taking effect is one of its
//! possible outcomes. An unknown write whose value is written once and seen must precede every
//! read that saw it, so it returns no later than the earliest return among those reads. Only an
//! unknown write of a value written more than once keeps its infinite return.
//!
//! The search of a key is bounded; a key that exhausts the bound is reported as an error,
//! never as a pass.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

/// List entries the search of one key may visit before giving up.
const STEP_LIMIT: u64 = 5_000_000;

/// Most operations listed in a violation report.
const REPORT_OPS: usize = 20;

/// Most linearized operations listed, as context, in a violation report.
const REPORT_CONTEXT: usize = 6;

/// Return time of an operation that may take effect at any time after its call (+infinity).
const NEVER: u64 = u64::MAX;

/// One operation on a register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// Sets the register to `value` (values written are unique across the history).
    Write { key: u32, value: u64 },
    /// Observed the register holding `value` (None: never written).
    Read { key: u32, value: Option<u64> },
}

impl Op {
    /// The register the operation is on.
    fn key(self) -> u32 {
        match self {
            Op::Write { key, .. } | Op::Read { key, .. } => key,
        }
    }

    /// The register's state after the operation runs in `state`, or `None` if the operation
    /// cannot run in that state (a read that would see something else).
    fn apply(self, state: Option<u64>) -> Option<Option<u64>> {
        match self {
            Op::Write { value, .. } => Some(Some(value)),
            Op::Read { value, .. } => (value == state).then_some(state),
        }
    }
}

/// Formats an operation for reports, without its key: `write 7`, `read 7`, `read none`.
impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Op::Write { value, .. } => write!(f, "write {value}"),
            Op::Read {
                value: Some(value), ..
            } => write!(f, "read {value}"),
            Op::Read { value: None, .. } => write!(f, "read none"),
        }
    }
}

/// An operation with its invocation and response times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Call {
    /// The operation.
    pub(crate) op: Op,
    /// Time the client invoked it.
    pub(crate) call: u64,
    /// Time the client saw it complete; `None` when its outcome is unknown (it may have taken
    /// effect at any time after `call`, or never). Only writes may have an unknown outcome;
    /// the caller leaves reads that did not complete out of the history.
    pub(crate) ret: Option<u64>,
}

/// check returns Ok if the history is linearizable, or Err with a human-readable description
/// of the first key whose operations are not (the key and the operations, sorted by call time,
/// at most ~20 lines). Keys are independent, so each key is checked on its own.
pub(crate) fn check(history: &[Call]) -> Result<(), String> {
    check_with_limit(history, STEP_LIMIT)
}

/// [`check`], with the number of steps the search of one key may take as a parameter.
fn check_with_limit(history: &[Call], limit: u64) -> Result<(), String> {
    let mut keys: BTreeMap<u32, Vec<Call>> = BTreeMap::new();
    for call in history {
        keys.entry(call.op.key()).or_default().push(*call);
    }
    for (key, calls) in keys {
        let ops = narrow(&calls);
        match search(&ops, limit) {
            Verdict::Linearizable => {}
            Verdict::Violation { linearized, stuck } => {
                return Err(report(key, &ops, &linearized, stuck));
            }
            Verdict::GaveUp => {
                return Err(format!(
                    "key {key}: linearizability check gave up after {limit} steps over {} \
                     operations; the history is not verified",
                    ops.len()
                ));
            }
        }
    }
    Ok(())
}

/// An operation of one key, as the search sees it.
#[derive(Debug, Clone, Copy)]
struct KeyOp {
    /// The operation as recorded.
    call: Call,
    /// Return time the search uses: [`NEVER`] for +infinity, or a bound derived for an
    /// unknown-outcome write; never earlier than the call.
    ret: u64,
}

/// Prepares one key's calls for the search, narrowing the unknown-outcome writes as the module
/// documentation explains: those whose value no read saw are dropped, and those whose value is
/// written once and seen return at the earliest return among the reads that saw it.
fn narrow(calls: &[Call]) -> Vec<KeyOp> {
    let mut writes: HashMap<u64, usize> = HashMap::new();
    let mut first_seen: HashMap<u64, u64> = HashMap::new();
    for call in calls {
        match call.op {
            Op::Write { value, .. } => *writes.entry(value).or_default() += 1,
            Op::Read {
                value: Some(value), ..
            } => {
                let ret = call.ret.unwrap_or(NEVER);
                first_seen
                    .entry(value)
                    .and_modify(|seen| *seen = (*seen).min(ret))
                    .or_insert(ret);
            }
            Op::Read { value: None, .. } => {}
        }
    }
    calls
        .iter()
        .filter_map(|&call| {
            let ret = match (call.op, call.ret) {
                (_, Some(ret)) => ret,
                (Op::Write { value, .. }, None) => match first_seen.get(&value) {
                    None => return None,
                    Some(&seen) if writes[&value] == 1 => seen,
                    Some(_) => NEVER,
                },
                (Op::Read { .. }, None) => NEVER,
            };
            Some(KeyOp {
                call,
                ret: ret.max(call.call),
            })
        })
        .collect()
}

/// Outcome of the search of one key.
enum Verdict {
    /// A linearization exists.
    Linearizable,
    /// No linearization exists. `linearized` is the set of operations of the longest
    /// consistent order found, and `stuck` the operation that could not follow it.
    Violation { linearized: Vec<u64>, stuck: usize },
    /// The step bound ran out before the search finished.
    GaveUp,
}

/// Searches for a linearization of one key's operations, visiting at most `limit` entries of
/// the event list.
fn search(ops: &[KeyOp], limit: u64) -> Verdict {
    let mut list = EventList::new(ops);
    let mut linearized = vec![0u64; ops.len().div_ceil(64)];
    let mut state: Option<u64> = None;
    // The call event of each linearized operation, with the state from before it.
    let mut undo: Vec<(usize, Option<u64>)> = Vec::new();
    // Explored (linearized set, state) pairs, grouped by state.
    let mut seen: HashMap<Option<u64>, HashSet<Vec<u64>>> = HashMap::new();
    // Longest consistent order found: its length, its set, and the operation stuck after it.
    let mut best: Option<(usize, Vec<u64>, usize)> = None;
    let mut entry = list.head();
    let mut steps = 0u64;
    while !list.is_empty() {
        steps += 1;
        if steps > limit {
            return Verdict::GaveUp;
        }
        let op = list.op[entry];
        if list.is_call(entry) {
            if let Some(next_state) = ops[op].call.op.apply(state) {
                set_bit(&mut linearized, op);
                let explored = seen.entry(next_state).or_default();
                if !explored.contains(linearized.as_slice()) {
                    explored.insert(linearized.clone());
                    undo.push((entry, state));
                    state = next_state;
                    list.lift(entry);
                    entry = list.head();
                    continue;
                }
                clear_bit(&mut linearized, op);
            }
            entry = list.next[entry];
        } else {
            if best.as_ref().is_none_or(|(len, _, _)| undo.len() > *len) {
                best = Some((undo.len(), linearized.clone(), op));
            }
            let Some((call, before)) = undo.pop() else {
                let (_, linearized, stuck) = best.unwrap_or((0, linearized, op));
                return Verdict::Violation { linearized, stuck };
            };
            clear_bit(&mut linearized, list.op[call]);
            state = before;
            list.unlift(call);
            entry = list.next[call];
        }
    }
    Verdict::Linearizable
}

/// The call and return events of one key's operations, sorted by time, as a circular doubly
/// linked list over vectors, so that an operation's events can be unlinked and relinked in
/// constant time. Node 0 is the sentinel; nodes `1..` are the events.
struct EventList {
    /// The operation (index into the key's operations) of each event node.
    op: Vec<usize>,
    /// For a call node, the return node of the same operation; 0 for a return node.
    partner: Vec<usize>,
    /// The node after each node.
    next: Vec<usize>,
    /// The node before each node.
    prev: Vec<usize>,
}

impl EventList {
    /// Builds the list: events by time, calls before returns at equal times.
    fn new(ops: &[KeyOp]) -> Self {
        let mut events: Vec<(u64, bool, usize)> = ops
            .iter()
            .enumerate()
            .flat_map(|(i, op)| [(op.call.call, false, i), (op.ret, true, i)])
            .collect();
        events.sort_unstable();
        let len = events.len() + 1;
        let mut op = vec![usize::MAX; len];
        let mut partner = vec![0; len];
        let mut call_node = vec![0; ops.len()];
        for (pos, &(_, is_return, i)) in events.iter().enumerate() {
            let node = pos + 1;
            op[node] = i;
            if is_return {
                partner[call_node[i]] = node;
            } else {
                call_node[i] = node;
            }
        }
        EventList {
            op,
            partner,
            next: (0..len).map(|node| (node + 1) % len).collect(),
            prev: (0..len).map(|node| (node + len - 1) % len).collect(),
        }
    }

    /// The first event node, or the sentinel if the list is empty.
    fn head(&self) -> usize {
        self.next[0]
    }

    /// Whether every operation has been lifted out.
    fn is_empty(&self) -> bool {
        self.next[0] == 0
    }

    /// Whether `node` is a call event.
    fn is_call(&self, node: usize) -> bool {
        self.partner[node] != 0
    }

    /// Unlinks the operation whose call event is `call`: its call and its return.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.partner[call]);
    }

    /// Undoes [`EventList::lift`] of `call`, which must be the last lift not yet undone.
    fn unlift(&mut self, call: usize) {
        self.relink(self.partner[call]);
        self.relink(call);
    }

    /// Takes `node` out of the list, leaving its own links in place for [`EventList::relink`].
    fn unlink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = next;
        self.prev[next] = prev;
    }

    /// Puts `node` back between the neighbours it had when it was unlinked.
    fn relink(&mut self, node: usize) {
        let (prev, next) = (self.prev[node], self.next[node]);
        self.next[prev] = node;
        self.prev[next] = node;
    }
}

/// Adds `i` to the bitset `bits`.
fn set_bit(bits: &mut [u64], i: usize) {
    bits[i / 64] |= 1 << (i % 64);
}

/// Removes `i` from the bitset `bits`.
fn clear_bit(bits: &mut [u64], i: usize) {
    bits[i / 64] &= !(1 << (i % 64));
}

/// Whether the bitset `bits` holds `i`.
fn has_bit(bits: &[u64], i: usize) -> bool {
    bits[i / 64] & (1 << (i % 64)) != 0
}

/// Describes a violation on `key`: the last few operations of the longest consistent order
/// found (`linearized`, marked `+`), then the pending operations that were candidates to
/// follow it, the one that could not (`stuck`) marked `!`, and, if that one is a read of a
/// value, the write of the value; at most [`REPORT_OPS`] operations, sorted by call time.
fn report(key: u32, ops: &[KeyOp], linearized: &[u64], stuck: usize) -> String {
    let by_call = |&i: &usize| (ops[i].call.call, i);
    let mut done: Vec<usize> = (0..ops.len()).filter(|&i| has_bit(linearized, i)).collect();
    done.sort_by_key(by_call);
    let context = done.len().min(REPORT_CONTEXT);
    let mut shown: Vec<usize> = done[done.len() - context..].to_vec();
    // The stuck operation has the earliest return among the pending ones, so it comes first.
    let mut pending: Vec<usize> = (0..ops.len())
        .filter(|&i| !has_bit(linearized, i) && ops[i].call.call <= ops[stuck].ret)
        .collect();
    pending.sort_by_key(|&i| (ops[i].ret, i != stuck, ops[i].call.call, i));
    // For a read of a value, the write of that value shows where the value came from.
    let source = match ops[stuck].call.op {
        Op::Read {
            value: Some(value), ..
        } => ops
            .iter()
            .position(|op| op.call.op == Op::Write { key, value }),
        _ => None,
    };
    pending.truncate(REPORT_OPS - context - usize::from(source.is_some()));
    shown.extend(pending);
    shown.extend(source);
    shown.sort_by_key(by_call);
    shown.dedup();

    let mut out = format!(
        "key {key}: not linearizable: the longest consistent order found places {} of {} \
         operations (+: placed); `{}` invoked at {} cannot follow it (!). Operations near that \
         point, by call time:",
        done.len(),
        ops.len(),
        ops[stuck].call.op,
        ops[stuck].call.call,
    );
    for &i in &shown {
        let mark = if i == stuck {
            '!'
        } else if has_bit(linearized, i) {
            '+'
        } else {
            ' '
        };
        let call = ops[i].call;
        let ret = call
            .ret
            .map_or_else(|| "?".to_string(), |ret| ret.to_string());
        out.push_str(&format!("\n  {mark} [{}, {ret}] {}", call.call, call.op));
    }
    if shown.len() < ops.len() {
        out.push_str(&format!(
            "\n  ... {} more not shown",
            ops.len() - shown.len()
        ));
    }
    out
}

#[cfg(test)]
#[path = "linearizability_tests.rs"]
mod tests;
