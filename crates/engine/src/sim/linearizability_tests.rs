//! Tests of `linearizability.rs`.

use super::*;

/// A write of `value` to `key` over `[call, ret]`; `ret` None for an unknown outcome.
fn write(key: u32, value: u64, call: u64, ret: Option<u64>) -> Call {
    Call {
        op: Op::Write { key, value },
        call,
        ret,
    }
}

/// A read of `key` over `[call, ret]` that saw `value`.
fn read(key: u32, value: Option<u64>, call: u64, ret: u64) -> Call {
    Call {
        op: Op::Read { key, value },
        call,
        ret: Some(ret),
    }
}

/// Asserts that `history` is rejected with a message about `key`, and returns the message.
fn rejected(history: &[Call], key: u32) -> String {
    let err = check(history).expect_err("history should not be linearizable");
    assert!(err.starts_with(&format!("key {key}:")), "{err}");
    assert!(!err.contains("gave up"), "{err}");
    assert!(err.lines().count() <= REPORT_OPS + 2, "{err}");
    err
}

/// SplitMix64, a small deterministic generator for the randomized tests.
struct SplitMix(u64);

impl SplitMix {
    /// The next 64 pseudo-random bits.
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A pseudo-random number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Generates a linearizable history: `clients` clients issue `ops` operations on `keys`
/// keys, each client one at a time with random gaps and durations, so that intervals of
/// different clients overlap. Each operation takes effect at a random instant inside its
/// interval, and reads return what a sequential register holds at that instant. About one
/// write in eight gets an unknown outcome, and half of those never take effect.
fn random_history(seed: u64, ops: usize, keys: u32, clients: usize) -> Vec<Call> {
    let mut rng = SplitMix(seed);
    let mut free_at = vec![0u64; clients];
    let mut history = Vec::with_capacity(ops);
    // When each operation takes effect; None for never.
    let mut effect = Vec::with_capacity(ops);
    for n in 0..ops {
        let client = (0..clients)
            .min_by_key(|&c| free_at[c])
            .expect("no clients");
        let call = free_at[client] + rng.below(3);
        let len = 1 + rng.below(20);
        free_at[client] = call + len;
        let key = rng.below(keys.into()) as u32;
        let op = if rng.below(2) == 0 {
            Op::Write {
                key,
                value: n as u64 + 1,
            }
        } else {
            Op::Read { key, value: None }
        };
        let unknown = matches!(op, Op::Write { .. }) && rng.below(8) == 0;
        let at = call + rng.below(len + 1);
        effect.push((!unknown || rng.below(2) == 0).then_some(at));
        let ret = (!unknown).then_some(call + len);
        history.push(Call { op, call, ret });
    }
    let mut order: Vec<usize> = (0..ops).filter(|&i| effect[i].is_some()).collect();
    order.sort_by_key(|&i| (effect[i], i));
    let mut registers = vec![None; keys as usize];
    for i in order {
        match &mut history[i].op {
            Op::Write { key, value } => registers[*key as usize] = Some(*value),
            Op::Read { key, value } => *value = registers[*key as usize],
        }
    }
    history
}

/// Makes one read of `history` stale beyond doubt: it now returns the value of an
/// acknowledged write that another acknowledged write followed, both before the read was
/// invoked. Returns the read's key.
fn make_stale(history: &mut [Call]) -> u32 {
    for r in (0..history.len()).rev() {
        let Op::Read { key, .. } = history[r].op else {
            continue;
        };
        let acked =
            |c: &&Call| matches!(c.op, Op::Write { key: k, .. } if k == key) && c.ret.is_some();
        let Some(old) = history.iter().filter(acked).min_by_key(|c| c.ret).copied() else {
            continue;
        };
        let (Op::Write { value, .. }, Some(old_ret)) = (old.op, old.ret) else {
            continue;
        };
        let read_call = history[r].call;
        let overwritten = history
            .iter()
            .filter(acked)
            .any(|c| c.call > old_ret && c.ret.is_some_and(|ret| ret < read_call));
        if overwritten {
            history[r].op = Op::Read {
                key,
                value: Some(value),
            };
            return key;
        }
    }
    panic!("no read can be made stale");
}

#[test]
fn empty_history_passes() {
    assert_eq!(check(&[]), Ok(()));
}

#[test]
fn sequential_history_passes() {
    let history = [
        read(1, None, 0, 1),
        write(1, 10, 2, Some(3)),
        read(1, Some(10), 4, 5),
        write(1, 20, 6, Some(7)),
        read(1, Some(20), 8, 9),
        read(1, Some(20), 9, 10),
    ];
    assert_eq!(check(&history), Ok(()));
}

#[test]
fn concurrent_read_may_see_old_or_new_value() {
    for seen in [Some(1), Some(2)] {
        let history = [
            write(1, 1, 0, Some(5)),
            write(1, 2, 10, Some(20)),
            read(1, seen, 12, 18),
        ];
        assert_eq!(check(&history), Ok(()), "read saw {seen:?}");
    }
    // Touching intervals are concurrent.
    let history = [write(1, 1, 0, Some(10)), read(1, None, 10, 20)];
    assert_eq!(check(&history), Ok(()));
}

#[test]
fn stale_read_is_flagged() {
    let history = [write(3, 1, 0, Some(10)), read(3, None, 20, 30)];
    let err = rejected(&history, 3);
    assert!(err.contains("! [20, 30] read none"), "{err}");

    let history = [
        write(3, 1, 0, Some(10)),
        write(3, 2, 11, Some(15)),
        read(3, Some(1), 20, 30),
    ];
    let err = rejected(&history, 3);
    assert!(err.contains("+ [0, 10] write 1"), "{err}");
    assert!(err.contains("! [20, 30] read 1"), "{err}");
}

#[test]
fn lost_write_is_flagged() {
    let history = [
        write(4, 1, 0, Some(10)),
        write(4, 2, 20, Some(30)),
        read(4, Some(1), 40, 50),
        read(4, Some(1), 60, 70),
    ];
    rejected(&history, 4);

    let history = [write(4, 1, 0, Some(10)), read(4, None, 40, 50)];
    rejected(&history, 4);
}

#[test]
fn unknown_write_may_be_observed_later_or_never() {
    let observed = [
        write(5, 1, 0, Some(10)),
        write(5, 2, 20, None),
        read(5, Some(1), 30, 40),
        read(5, Some(2), 100, 110),
        read(5, Some(2), 120, 130),
    ];
    assert_eq!(check(&observed), Ok(()));

    let never = [
        write(5, 1, 0, Some(10)),
        write(5, 2, 20, None),
        read(5, Some(1), 30, 40),
        read(5, Some(1), 100, 110),
    ];
    assert_eq!(check(&never), Ok(()));

    // Once seen, the unknown write has happened: the older value cannot come back.
    let flip_back = [
        write(5, 1, 0, Some(10)),
        write(5, 2, 20, None),
        read(5, Some(2), 30, 40),
        read(5, Some(1), 100, 110),
    ];
    rejected(&flip_back, 5);

    let invented = [
        write(5, 1, 0, Some(10)),
        write(5, 2, 20, None),
        read(5, Some(3), 30, 40),
    ];
    rejected(&invented, 5);
}

#[test]
fn repeated_value_keeps_unknown_write_open_ended() {
    // Value 5 is written twice, so the unknown write cannot be narrowed; it may still
    // take effect after the acknowledged write of 6.
    let history = [
        write(6, 5, 0, Some(10)),
        write(6, 6, 20, Some(30)),
        write(6, 5, 40, None),
        read(6, Some(6), 45, 50),
        read(6, Some(5), 60, 70),
    ];
    assert_eq!(check(&history), Ok(()));
    rejected(
        &history[..2]
            .iter()
            .chain(&history[4..])
            .copied()
            .collect::<Vec<_>>(),
        6,
    );
}

#[test]
fn read_before_write_is_invoked_is_flagged() {
    let history = [read(7, Some(1), 0, 10), write(7, 1, 20, Some(30))];
    rejected(&history, 7);

    let history = [read(7, Some(1), 0, 10), write(7, 1, 20, None)];
    rejected(&history, 7);
}

#[test]
fn independent_keys_do_not_interfere() {
    let history = [
        write(1, 1, 0, Some(10)),
        read(2, None, 20, 30),
        write(2, 2, 40, Some(50)),
        read(1, Some(1), 60, 70),
        read(2, Some(2), 60, 70),
    ];
    assert_eq!(check(&history), Ok(()));

    let history = [
        write(1, 1, 0, Some(10)),
        read(2, Some(1), 20, 30),
        read(1, Some(1), 20, 30),
    ];
    rejected(&history, 2);
}

#[test]
fn search_gives_up_at_the_step_bound() {
    let history = [
        write(8, 1, 0, Some(10)),
        read(8, Some(1), 20, 30),
        write(8, 2, 40, Some(50)),
    ];
    assert_eq!(check_with_limit(&history, 100), Ok(()));
    let err = check_with_limit(&history, 2).expect_err("search should give up");
    assert!(
        err.starts_with("key 8:") && err.contains("gave up"),
        "{err}"
    );
}

#[test]
fn random_histories_pass_and_a_stale_read_fails() {
    for seed in 1..=5 {
        let mut history = random_history(seed, 1_000, 5, 4);
        assert_eq!(check(&history), Ok(()), "seed {seed}");
        let key = make_stale(&mut history);
        rejected(&history, key);
    }
}

#[test]
fn long_single_key_history_passes_and_a_stale_read_fails() {
    let mut history = random_history(42, 2_000, 1, 4);
    let unknown = history.iter().filter(|c| c.ret.is_none()).count();
    assert!(unknown >= 20, "only {unknown} unknown outcomes");
    assert_eq!(check(&history), Ok(()));
    make_stale(&mut history);
    rejected(&history, 0);
}
