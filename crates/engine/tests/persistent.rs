//! A persistent state machine reopens at its own applied index and sees only what follows.

mod common;

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use common::*;
use parking_lot::Mutex;
use zongzi_engine::{ApplyResult, SmEntry, SmError, StartMode, StateMachine};

/// Journal keeps `index key=value` lines in a file it syncs after every batch. It records
/// every index it is handed, so a test can see whether anything was applied twice.
struct Journal {
    path: PathBuf,
    lines: Vec<(u64, String)>,
    seen: Arc<Mutex<Vec<u64>>>,
}

impl StateMachine for Journal {
    fn open(&mut self) -> Result<u64, SmError> {
        let e = |e: std::io::Error| SmError(e.to_string());
        if let Ok(f) = File::open(&self.path) {
            for line in BufReader::new(f).lines() {
                let line = line.map_err(e)?;
                let (i, kv) = line
                    .split_once(' ')
                    .ok_or_else(|| SmError("corrupt journal".into()))?;
                self.lines.push((
                    i.parse().map_err(|_| SmError("corrupt journal".into()))?,
                    kv.to_string(),
                ));
            }
        }
        Ok(self.lines.last().map(|l| l.0).unwrap_or(0))
    }

    fn update(&mut self, entries: &[SmEntry]) -> Result<Vec<ApplyResult>, SmError> {
        let e = |e: std::io::Error| SmError(e.to_string());
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(e)?;
        let mut out = Vec::new();
        for en in entries {
            self.seen.lock().push(en.index);
            let kv = String::from_utf8_lossy(&en.data).into_owned();
            writeln!(f, "{} {}", en.index, kv).map_err(e)?;
            self.lines.push((en.index, kv));
            out.push(ApplyResult {
                value: en.index,
                data: Vec::new(),
            });
        }
        f.sync_all().map_err(e)?;
        Ok(out)
    }

    fn query(&self, q: &[u8]) -> Result<Vec<u8>, SmError> {
        let key = String::from_utf8_lossy(q);
        let prefix = format!("{key}=");
        Ok(self
            .lines
            .iter()
            .rev()
            .find_map(|(_, kv)| kv.strip_prefix(&prefix).map(|v| v.as_bytes().to_vec()))
            .unwrap_or_default())
    }

    fn save_snapshot(&self, w: &mut dyn Write) -> Result<(), SmError> {
        for (i, kv) in &self.lines {
            writeln!(w, "{i} {kv}").map_err(|e| SmError(e.to_string()))?;
        }
        Ok(())
    }

    fn recover_from_snapshot(&mut self, _index: u64, r: &mut dyn Read) -> Result<(), SmError> {
        let mut s = String::new();
        r.read_to_string(&mut s)
            .map_err(|e| SmError(e.to_string()))?;
        std::fs::write(&self.path, &s).map_err(|e| SmError(e.to_string()))?;
        self.lines.clear();
        self.open().map(|_| ())
    }
}

/// journal is a Journal over host `i`'s file, recording what it applies in `seen`.
fn journal(c: &Cluster, i: usize, seen: &Arc<Mutex<Vec<u64>>>) -> Box<dyn StateMachine> {
    Box::new(Journal {
        path: c.nodes[i].dir.join("journal"),
        lines: Vec::new(),
        seen: seen.clone(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_state_machine_reopens_at_its_own_applied_index() {
    let mut c = Cluster::new(3);
    let voters: Vec<(u64, String)> = (0..3)
        .map(|i| (rid(1, i), c.nodes[i].addr.clone()))
        .collect();
    let seen: Vec<Arc<Mutex<Vec<u64>>>> = (0..3).map(|_| Default::default()).collect();
    for (i, seen) in seen.iter().enumerate() {
        c.nodes[i]
            .host()
            .start_replica(
                1,
                rid(1, i),
                StartMode::Bootstrap(voters.clone()),
                journal(&c, i, seen),
            )
            .unwrap();
    }
    let l = c.leader(1).await;
    for i in 0..20 {
        c.put(l, 1, &format!("k{i}"), &i.to_string()).await;
    }
    let f = (l + 1) % 3;
    assert_eq!(c.get(f, 1, "k19").await, "19");
    let applied_before = c.nodes[f].host().status(1).await.unwrap().applied;
    let last_seen = *seen[f].lock().last().unwrap();

    // Restart the follower with a fresh instance over the same journal.
    c.stop(f);
    c.put(l, 1, "k20", "20").await;
    let mut cfg = config(&c.nodes[f].dir, &c.nodes[f].addr, c.nodes[f].events.clone());
    cfg.snapshot_entries = 0;
    let host = open_retry(cfg);
    let fresh: Arc<Mutex<Vec<u64>>> = Default::default();
    host.start_replica(1, rid(1, f), StartMode::Restart, journal(&c, f, &fresh))
        .unwrap();
    c.nodes[f].host = Some(host);
    assert_eq!(c.get(f, 1, "k20").await, "20");
    assert_eq!(c.get(f, 1, "k3").await, "3");
    let replayed = fresh.lock().clone();
    assert!(!replayed.is_empty());
    assert!(
        replayed.iter().all(|&i| i > last_seen),
        "entries up to {last_seen} were applied again: {replayed:?}"
    );
    assert!(c.nodes[f].host().status(1).await.unwrap().applied > applied_before);
}

/// Ahead claims to have applied far more than any log holds.
struct Ahead;

impl StateMachine for Ahead {
    fn open(&mut self) -> Result<u64, SmError> {
        Ok(1_000_000)
    }
    fn update(&mut self, e: &[SmEntry]) -> Result<Vec<ApplyResult>, SmError> {
        Ok(vec![ApplyResult::default(); e.len()])
    }
    fn query(&self, _: &[u8]) -> Result<Vec<u8>, SmError> {
        Ok(Vec::new())
    }
    fn save_snapshot(&self, _: &mut dyn Write) -> Result<(), SmError> {
        Ok(())
    }
    fn recover_from_snapshot(&mut self, _index: u64, _: &mut dyn Read) -> Result<(), SmError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_machine_ahead_of_the_log_is_refused_with_a_clear_error() {
    let c = Cluster::new(1);
    let voters = vec![(rid(1, 0), c.nodes[0].addr.clone())];
    let h = c.nodes[0].host();
    let e = h
        .start_replica(1, rid(1, 0), StartMode::Bootstrap(voters), Box::new(Ahead))
        .unwrap_err();
    assert_eq!(e.code(), "ERR_STATE_MACHINE");
    assert!(e.to_string().contains("1000000"), "{e}");
    // The host is still usable for other shards.
    c.bootstrap(2, &[0]);
    c.put(0, 2, "a", "1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_persistent_state_machine_keeps_the_sessions_from_its_log() {
    let mut c = Cluster::new(3);
    let voters: Vec<(u64, String)> = (0..3)
        .map(|i| (rid(1, i), c.nodes[i].addr.clone()))
        .collect();
    for i in 0..3 {
        let sm = journal(&c, i, &Default::default());
        c.nodes[i]
            .host()
            .start_replica(1, rid(1, i), StartMode::Bootstrap(voters.clone()), sm)
            .unwrap();
    }
    let l = c.leader(1).await;
    let f = (l + 1) % 3;
    let s = |series| zongzi_engine::Session {
        client_id: 9,
        series,
        responded_to: 0,
    };
    retry("register", || c.nodes[l].host().register_session(1, 9, T)).await;
    let first = retry("series 1", || {
        c.nodes[f].host().propose_in(1, s(1), b"a=1".to_vec(), T)
    })
    .await;
    assert_eq!(c.get(f, 1, "a").await, "1");
    // Reopen the follower's journal in a new host: no snapshot, so the session table is
    // rebuilt from the log past nothing but the journal's own applied index.
    c.stop(f);
    let cfg = config(&c.nodes[f].dir, &c.nodes[f].addr, c.nodes[f].events.clone());
    let host = open_retry(cfg);
    let fresh: Arc<Mutex<Vec<u64>>> = Default::default();
    host.start_replica(1, rid(1, f), StartMode::Restart, journal(&c, f, &fresh))
        .unwrap();
    c.nodes[f].host = Some(host);
    // Sent again through the reopened host: it never applies again there. Its answer is the
    // first one where the table kept it, or "unknown" where it was rebuilt.
    let again = retry("series 1 again", || async {
        match c.nodes[f]
            .host()
            .propose_in(1, s(1), b"a=2".to_vec(), T)
            .await
        {
            Err(zongzi_engine::Error::OutcomeUnknown(m)) => Ok(Err(m)),
            other => other.map(Ok),
        }
    })
    .await;
    match again {
        Ok(r) => assert_eq!(r, first),
        Err(m) => assert!(m.contains("not kept"), "{m}"),
    }
    c.put(l, 1, "b", "1").await;
    assert_eq!(c.get(f, 1, "b").await, "1");
    assert_eq!(c.get(f, 1, "a").await, "1", "the retry applied again");
    assert_eq!(
        fresh.lock().len(),
        1,
        "applied after reopening: {:?}",
        fresh.lock()
    );
}
