use super::*;

fn s(client_id: u64, series: u64, responded_to: u64) -> Session {
    Session {
        client_id,
        series,
        responded_to,
    }
}

fn result(v: u64) -> ApplyResult {
    ApplyResult {
        value: v,
        data: vec![v as u8],
    }
}

/// applied runs one entry through the table as the apply thread does, the state machine
/// answering `v`; it returns what the proposer is told.
fn applied(t: &mut Sessions, index: u64, sess: Session, v: u64) -> Result<ApplyResult> {
    let out = match t.check(index, sess) {
        Verdict::Apply => {
            t.record(sess.client_id, sess.series, Some(&result(v)));
            Ok(result(v))
        }
        Verdict::Answer(r) => r,
        Verdict::SameAs(i) => panic!("alone in its batch, yet the same as {i}"),
    };
    t.end_batch();
    out
}

fn code(r: Result<ApplyResult>) -> &'static str {
    r.err().map(|e| e.code()).unwrap_or("ok")
}

#[test]
fn a_series_applies_once_and_its_retries_get_the_first_result() {
    let mut t = Sessions::new(8);
    assert_eq!(applied(&mut t, 1, s(7, REGISTER, 0), 0).unwrap().value, 7);
    assert_eq!(applied(&mut t, 2, s(7, 1, 0), 10).unwrap(), result(10));
    // The retry would answer 11 if it applied again.
    assert_eq!(applied(&mut t, 3, s(7, 1, 0), 11).unwrap(), result(10));
    assert_eq!(applied(&mut t, 4, s(7, 2, 1), 12).unwrap(), result(12));
    // Registering again changes nothing.
    applied(&mut t, 5, s(7, REGISTER, 0), 0).unwrap();
    assert_eq!(applied(&mut t, 6, s(7, 2, 1), 13).unwrap(), result(12));
}

#[test]
fn a_repeat_within_one_batch_is_answered_as_the_first() {
    let mut t = Sessions::new(8);
    applied(&mut t, 1, s(7, REGISTER, 0), 0).unwrap();
    assert!(matches!(t.check(2, s(7, 1, 0)), Verdict::Apply));
    assert!(matches!(t.check(3, s(7, 1, 0)), Verdict::SameAs(2)));
    t.record(7, 1, Some(&result(1)));
    t.end_batch();
    assert_eq!(applied(&mut t, 4, s(7, 1, 0), 9).unwrap(), result(1));
}

#[test]
fn answered_series_are_dropped_and_never_apply_again() {
    let mut t = Sessions::new(8);
    applied(&mut t, 1, s(7, REGISTER, 0), 0).unwrap();
    applied(&mut t, 2, s(7, 1, 0), 1).unwrap();
    applied(&mut t, 3, s(7, 2, 1), 2).unwrap();
    assert_eq!(
        code(applied(&mut t, 4, s(7, 1, 1), 9)),
        "ERR_SESSION_EXPIRED"
    );
    assert_eq!(applied(&mut t, 5, s(7, 2, 1), 9).unwrap(), result(2));
}

#[test]
fn without_a_session_nothing_applies() {
    let mut t = Sessions::new(8);
    assert_eq!(
        code(applied(&mut t, 1, s(7, 1, 0), 1)),
        "ERR_SESSION_EXPIRED"
    );
    applied(&mut t, 2, s(7, REGISTER, 0), 0).unwrap();
    applied(&mut t, 3, s(7, UNREGISTER, 0), 0).unwrap();
    assert_eq!(
        code(applied(&mut t, 4, s(7, 1, 0), 1)),
        "ERR_SESSION_EXPIRED"
    );
    assert_eq!(
        code(applied(&mut t, 5, s(0, 1, 0), 1)),
        "ERR_INVALID_ARGUMENT"
    );
}

#[test]
fn past_the_cap_the_least_recently_used_session_goes() {
    let mut t = Sessions::new(2);
    applied(&mut t, 1, s(1, REGISTER, 0), 0).unwrap();
    applied(&mut t, 2, s(2, REGISTER, 0), 0).unwrap();
    applied(&mut t, 3, s(1, 1, 0), 1).unwrap(); // 1 is used after 2
    applied(&mut t, 4, s(3, REGISTER, 0), 0).unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(
        code(applied(&mut t, 5, s(2, 1, 0), 1)),
        "ERR_SESSION_EXPIRED"
    );
    assert_eq!(applied(&mut t, 6, s(1, 1, 0), 9).unwrap(), result(1));
    assert_eq!(applied(&mut t, 7, s(3, 1, 0), 3).unwrap(), result(3));
}

#[test]
fn a_session_keeps_a_bounded_number_of_results() {
    let mut t = Sessions::new(2);
    applied(&mut t, 1, s(1, REGISTER, 0), 0).unwrap();
    let n = MAX_RESULTS as u64 + 10;
    for series in 1..=n {
        applied(&mut t, 1 + series, s(1, series, 0), series).unwrap();
    }
    // The oldest results went: whether series 1 applied is no longer known.
    assert_eq!(
        code(applied(&mut t, n + 2, s(1, 1, 0), 0)),
        "ERR_OUTCOME_UNKNOWN"
    );
    assert_eq!(applied(&mut t, n + 3, s(1, n, 0), 0).unwrap(), result(n));
}

#[test]
fn the_table_round_trips_and_garbage_is_refused() {
    let mut t = Sessions::new(4);
    applied(&mut t, 1, s(1, REGISTER, 0), 0).unwrap();
    applied(&mut t, 2, s(9, REGISTER, 0), 0).unwrap();
    applied(&mut t, 3, s(1, 1, 0), 5).unwrap();
    t.replay(4, s(9, 1, 0));
    let mut file = Vec::new();
    write_table(&mut file, &t).unwrap();
    file.extend_from_slice(b"the state machine's bytes");
    let mut r = file.as_slice();
    let back = read_table(&mut r, 4).unwrap();
    assert_eq!(back, t);
    assert_eq!(r, b"the state machine's bytes");
    // A series replayed after a restart applied, but its result is not known.
    assert_eq!(
        code(applied(&mut back.clone(), 5, s(9, 1, 0), 0)),
        "ERR_OUTCOME_UNKNOWN"
    );
    for cut in 0..file.len() - 25 {
        let _ = read_table(&mut &file[..cut], 4);
    }
    assert!(read_table(&mut &b"not a table at all"[..], 4).is_err());
    let table = t.encode();
    for i in 0..table.len() {
        let mut bad = table.clone();
        bad[i] ^= 0xff;
        let _ = Sessions::decode(4, &bad); // never panics
    }
}
