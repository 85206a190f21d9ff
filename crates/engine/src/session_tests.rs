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
    out
}

fn code(r: Result<ApplyResult>) -> &'static str {
    r.err().map(|e| e.code()).unwrap_or("ok")
}

#[test]
fn a_series_applies_once_and_its_retries_get_the_first_result() {
    let mut t = Sessions::new();
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
    let mut t = Sessions::new();
    applied(&mut t, 1, s(7, REGISTER, 0), 0).unwrap();
    assert!(matches!(t.check(2, s(7, 1, 0)), Verdict::Apply));
    assert!(matches!(t.check(3, s(7, 1, 0)), Verdict::SameAs(2)));
    t.record(7, 1, Some(&result(1)));
    assert_eq!(applied(&mut t, 4, s(7, 1, 0), 9).unwrap(), result(1));
}

#[test]
fn answered_series_are_dropped_and_never_apply_again() {
    let mut t = Sessions::new();
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
    let mut t = Sessions::new();
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
    // The cap comes with each registration (the third word of a REGISTER entry).
    let mut t = Sessions::new();
    applied(&mut t, 1, s(1, REGISTER, 2), 0).unwrap();
    applied(&mut t, 2, s(2, REGISTER, 2), 0).unwrap();
    applied(&mut t, 3, s(1, 1, 0), 1).unwrap(); // 1 is used after 2
    applied(&mut t, 4, s(3, REGISTER, 2), 0).unwrap();
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
    let mut t = Sessions::new();
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
    let mut t = Sessions::new();
    applied(&mut t, 1, s(1, REGISTER, 0), 0).unwrap();
    applied(&mut t, 2, s(9, REGISTER, 0), 0).unwrap();
    applied(&mut t, 3, s(1, 1, 0), 5).unwrap();
    t.replay(4, s(9, 1, 0));
    let mut file = Vec::new();
    write_table(&mut file, &t).unwrap();
    file.extend_from_slice(b"the state machine's bytes");
    let mut r = file.as_slice();
    let back = read_table(&mut r).unwrap();
    assert_eq!(back, t);
    assert_eq!(r, b"the state machine's bytes");
    // A series replayed after a restart applied, but its result is not known.
    assert_eq!(
        code(applied(&mut back.clone(), 5, s(9, 1, 0), 0)),
        "ERR_OUTCOME_UNKNOWN"
    );
    for cut in 0..file.len() - 25 {
        let _ = read_table(&mut &file[..cut]);
    }
    assert!(read_table(&mut &b"not a table at all"[..]).is_err());
    let table = t.encode();
    for i in 0..table.len() {
        let mut bad = table.clone();
        bad[i] ^= 0xff;
        let _ = Sessions::decode(&bad); // never panics
    }
}

#[test]
fn a_session_table_of_a_version_this_build_does_not_read_is_refused_by_name() {
    let mut t = Sessions::new();
    applied(&mut t, 1, s(1, REGISTER, 0), 0).unwrap();
    let mut file = Vec::new();
    write_table(&mut file, &t).unwrap();
    assert_eq!(&file[..8], b"ZZSESS01");
    let newer = crate::version::SESSION_TABLE_VERSION + 1;
    for version in [newer, 99, 0] {
        let mut f = file.clone();
        f[6..8].copy_from_slice(format!("{version:02}").as_bytes());
        let e = read_table(&mut f.as_slice()).unwrap_err();
        assert_eq!(e.code(), "ERR_UNSUPPORTED_VERSION");
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("session table version {version} ")),
            "{msg}"
        );
    }
}

#[test]
fn a_client_that_has_every_answer_drops_every_result() {
    let mut t = Sessions::new();
    applied(&mut t, 1, s(7, REGISTER, 0), 0).unwrap();
    applied(&mut t, 2, s(7, 1, 0), 1).unwrap();
    // Claiming every answer, series 2 included, applies nothing and keeps no result.
    let all = applied(&mut t, 3, s(7, 2, u64::MAX), 2);
    assert_eq!(code(all), "ERR_SESSION_EXPIRED");
    assert_eq!(
        code(applied(&mut t, 4, s(7, 1, 0), 9)),
        "ERR_SESSION_EXPIRED"
    );
}

#[test]
fn the_cap_of_the_registration_decides_not_the_host() {
    // Two replicas whose hosts would configure different caps apply the same log: the
    // registrations carry the cap, so both evict the same session.
    let log = [s(1, REGISTER, 1), s(2, REGISTER, 1), s(1, 1, 0)];
    let mut a = Sessions::new();
    let mut b = Sessions::new();
    for (i, e) in log.iter().enumerate() {
        let _ = applied(&mut a, i as u64 + 1, *e, 1);
        let _ = applied(&mut b, i as u64 + 1, *e, 1);
    }
    assert_eq!(a.len(), 1);
    assert_eq!(a.encode(), b.encode());
    assert_eq!(
        code(applied(&mut a, 9, s(1, 1, 0), 1)),
        "ERR_SESSION_EXPIRED"
    );
}

/// run_batches applies a log of session entries as the apply thread does, cut into batches
/// after each entry marked in `cuts`: every entry is checked in log order, the state machine
/// answers each entry that applies with its index, and results are recorded at the end of
/// its batch. It returns what each entry's proposer hears and the encoded table.
fn run_batches(log: &[Session], cuts: &[bool]) -> (Vec<String>, Vec<u8>) {
    let mut t = Sessions::new();
    let mut heard = Vec::new();
    let mut batch = Vec::new();
    for (i, e) in log.iter().enumerate() {
        let index = i as u64 + 1;
        let v = t.check(index, *e);
        batch.push((index, *e, v));
        if cuts.get(i).copied().unwrap_or(false) {
            finish(&mut t, &mut batch, &mut heard);
        }
    }
    finish(&mut t, &mut batch, &mut heard);
    (heard, t.encode())
}

/// finish ends a batch of `run_batches`.
fn finish(t: &mut Sessions, batch: &mut Vec<(u64, Session, Verdict)>, heard: &mut Vec<String>) {
    for (index, sess, v) in batch.iter() {
        if matches!(v, Verdict::Apply) {
            t.record(sess.client_id, sess.series, Some(&result(*index)));
        }
    }
    // The state machine answers an entry with its index; a repeat hears the first's answer.
    for (index, _, v) in batch.drain(..) {
        let r = match v {
            Verdict::Apply => Ok(index),
            Verdict::SameAs(first) => Ok(first),
            Verdict::Answer(r) => r.map(|r| r.value),
        };
        heard.push(r.map_or_else(|e| e.code().to_string(), |v| format!("answer {v}")));
    }
}

fn arb_entry() -> impl proptest::strategy::Strategy<Value = Session> {
    use proptest::prelude::*;
    (1u64..=3, 0u8..10, 1u64..=4, 0u64..=3).prop_map(|(client, kind, series, n)| match kind {
        0 => s(client, REGISTER, n % 3 + 1),
        1 => s(client, UNREGISTER, 0),
        _ => s(client, series, n),
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    #[test]
    fn verdicts_and_the_table_do_not_depend_on_batch_boundaries(
        log in proptest::collection::vec(arb_entry(), 1..40),
        cuts_a in proptest::collection::vec(proptest::prelude::any::<bool>(), 40),
        cuts_b in proptest::collection::vec(proptest::prelude::any::<bool>(), 40),
    ) {
        proptest::prop_assert_eq!(run_batches(&log, &cuts_a), run_batches(&log, &cuts_b));
    }
}

#[test]
fn overflowing_results_inside_one_batch_give_the_verdicts_of_separate_batches() {
    let n = MAX_RESULTS as u64 + 2;
    let mut log = vec![s(1, REGISTER, 0)];
    log.extend((1..=n).map(|series| s(1, series, 0)));
    // Series 1 again, after its result was pushed out by the later ones.
    log.push(s(1, 1, 0));
    let one_batch = vec![false; log.len()];
    let each_alone = vec![true; log.len()];
    assert_eq!(
        run_batches(&log, &one_batch),
        run_batches(&log, &each_alone)
    );
}
