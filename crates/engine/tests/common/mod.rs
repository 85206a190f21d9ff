//! Shared test fixtures: a small KV state machine and a cluster of hosts on loopback.
#![allow(dead_code)]

pub mod child;
pub mod recorder;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use zongzi_engine::{
    ApplyResult, Event, Host, HostConfig, SmEntry, SmError, StartMode, StateMachine,
};

pub const CLUSTER: u64 = 7;
pub const T: Duration = Duration::from_secs(5);

/// Kv is an in-memory map. Commands are `key=value`; a query is a key. The result of a
/// write is the number of keys after it and the previous value.
#[derive(Default)]
pub struct Kv {
    map: BTreeMap<String, String>,
    /// Fail on this key to test state machine failures.
    pub poison: Option<String>,
}

impl Kv {
    pub fn boxed() -> Box<dyn StateMachine> {
        Box::new(Kv::default())
    }
}

impl StateMachine for Kv {
    fn update(&mut self, entries: &[SmEntry]) -> Result<Vec<ApplyResult>, SmError> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let s = String::from_utf8_lossy(&e.data).into_owned();
            let (k, v) = s.split_once('=').unwrap_or((s.as_str(), ""));
            if self.poison.as_deref() == Some(k) {
                return Err(SmError(format!("poisoned key {k}")));
            }
            let prev = self.map.insert(k.to_string(), v.to_string());
            out.push(ApplyResult {
                value: self.map.len() as u64,
                data: prev.unwrap_or_default().into_bytes(),
            });
        }
        Ok(out)
    }

    fn query(&self, query: &[u8]) -> Result<Vec<u8>, SmError> {
        let k = String::from_utf8_lossy(query);
        if k == "#len" {
            return Ok(self.map.len().to_string().into_bytes());
        }
        Ok(self
            .map
            .get(k.as_ref())
            .cloned()
            .unwrap_or_default()
            .into_bytes())
    }

    fn save_snapshot(&self, w: &mut dyn Write) -> Result<(), SmError> {
        for (k, v) in &self.map {
            writeln!(w, "{k}={v}").map_err(|e| SmError(e.to_string()))?;
        }
        Ok(())
    }

    fn recover_from_snapshot(&mut self, _index: u64, r: &mut dyn Read) -> Result<(), SmError> {
        let mut s = String::new();
        r.read_to_string(&mut s)
            .map_err(|e| SmError(e.to_string()))?;
        self.map.clear();
        for line in s.lines() {
            if let Some((k, v)) = line.split_once('=') {
                self.map.insert(k.to_string(), v.to_string());
            }
        }
        Ok(())
    }
}

/// Node is one host of a test cluster with the events it reported.
pub struct Node {
    pub host: Option<Host>,
    pub dir: PathBuf,
    pub addr: String,
    pub events: Arc<Mutex<Vec<Event>>>,
}

impl Node {
    pub fn host(&self) -> &Host {
        self.host.as_ref().expect("host is running")
    }
}

pub fn config(dir: &std::path::Path, addr: &str, events: Arc<Mutex<Vec<Event>>>) -> HostConfig {
    let mut c = HostConfig::new(CLUSTER, dir);
    c.raft_address = addr.to_string();
    c.tick_ms = 10;
    c.election_ticks = 10;
    c.heartbeat_ticks = 2;
    c.snapshot_entries = 0;
    c.event_listener = Some(Arc::new(move |e| events.lock().push(e)));
    c
}

/// Tweak adjusts the configuration of host `i` before it opens.
pub type Tweak = Arc<dyn Fn(usize, &mut HostConfig) + Send + Sync>;
/// Factory makes the state machine of shard `s` on host `i`.
pub type Factory = Arc<dyn Fn(u64, usize) -> Box<dyn StateMachine> + Send + Sync>;

/// Cluster is a set of hosts on 127.0.0.1 with data in a temporary directory.
pub struct Cluster {
    pub tmp: tempfile::TempDir,
    pub nodes: Vec<Node>,
    pub tweak: Tweak,
    pub factory: Factory,
}

/// replica_id gives every (shard, host) pair a cluster-unique replica id.
pub fn rid(shard: u64, host: usize) -> u64 {
    shard * 100 + host as u64 + 1
}

impl Cluster {
    pub fn new(n: usize) -> Cluster {
        Self::with(n, |_| {})
    }

    pub fn with(n: usize, tweak: fn(&mut HostConfig)) -> Cluster {
        Self::custom(
            n,
            Arc::new(move |_, c| tweak(c)),
            Arc::new(|_, _| Kv::boxed()),
        )
    }

    /// custom opens `n` hosts, each configured by `tweak`, whose replicas get their state
    /// machines from `factory`.
    pub fn custom(n: usize, tweak: Tweak, factory: Factory) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = Cluster {
            tmp,
            nodes: Vec::new(),
            tweak: tweak.clone(),
            factory,
        };
        for i in 0..n {
            let dir = c.tmp.path().join(format!("host{i}"));
            let events = Arc::new(Mutex::new(Vec::new()));
            let mut cfg = config(&dir, "127.0.0.1:0", events.clone());
            tweak(i, &mut cfg);
            let host = Host::open(cfg).unwrap();
            let addr = host.raft_address().to_string();
            c.nodes.push(Node {
                host: Some(host),
                dir,
                addr,
                events,
            });
        }
        c
    }

    /// bootstrap starts a shard with a voter on each of the given hosts.
    pub fn bootstrap(&self, shard: u64, on: &[usize]) {
        let voters: Vec<(u64, String)> = on
            .iter()
            .map(|&i| (rid(shard, i), self.nodes[i].addr.clone()))
            .collect();
        self.bootstrap_with(shard, on, &voters);
    }

    /// bootstrap_with starts the shard on hosts `on` with an explicit voter list (which may
    /// name replicas that live in other processes).
    pub fn bootstrap_with(&self, shard: u64, on: &[usize], voters: &[(u64, String)]) {
        for &i in on {
            self.nodes[i]
                .host()
                .start_replica(
                    shard,
                    rid(shard, i),
                    StartMode::Bootstrap(voters.to_vec()),
                    (self.factory)(shard, i),
                )
                .unwrap();
        }
    }

    /// stop closes host `i` as a crash would leave it: nothing more is written.
    pub fn stop(&mut self, i: usize) {
        if let Some(h) = self.nodes[i].host.take() {
            h.close();
        }
    }

    /// restart reopens host `i` on its old address and restarts every replica on disk.
    pub fn restart(&mut self, i: usize) {
        self.stop(i);
        let n = &mut self.nodes[i];
        let mut cfg = config(&n.dir, &n.addr, n.events.clone());
        (self.tweak)(i, &mut cfg);
        let host = open_retry(cfg);
        for (shard, replica) in host.stored_replicas() {
            let sm = (self.factory)(shard, i);
            host.start_replica(shard, replica, StartMode::Restart, sm)
                .unwrap();
        }
        n.host = Some(host);
    }

    /// leader waits until every running host hosting `shard` agrees on one leader, and
    /// returns the index of the host holding it.
    pub async fn leader(&self, shard: u64) -> usize {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut seen = Vec::new();
            for (i, n) in self.nodes.iter().enumerate() {
                let Some(h) = &n.host else { continue };
                if let Ok(s) = h.status(shard).await {
                    seen.push((i, s.leader_id, s.replica_id));
                }
            }
            let leader = seen.first().map(|s| s.1).unwrap_or(0);
            if leader != 0 && seen.iter().all(|s| s.1 == leader) {
                if let Some((i, _, _)) = seen.iter().find(|s| s.2 == leader) {
                    return *i;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no leader for shard {shard}: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// put writes through host `i`, retrying while leadership settles.
    pub async fn put(&self, i: usize, shard: u64, k: &str, v: &str) -> ApplyResult {
        let data = format!("{k}={v}").into_bytes();
        retry(&format!("write {k}"), || {
            self.nodes[i].host().propose(shard, data.clone(), T)
        })
        .await
    }

    /// get reads linearizably through host `i`, retrying while leadership settles.
    pub async fn get(&self, i: usize, shard: u64, k: &str) -> String {
        let v = retry(&format!("read {k}"), || {
            self.nodes[i].host().read(shard, k.as_bytes(), T)
        })
        .await;
        String::from_utf8(v).unwrap()
    }
}

/// retry runs `f` until it succeeds, for up to 20 s (while leadership settles).
pub async fn retry<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = zongzi_engine::Result<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => {
                assert!(Instant::now() < deadline, "{what} kept failing: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// open_retry reopens a host; the old one's listener may take a moment to go away.
pub fn open_retry(cfg: HostConfig) -> Host {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Host::open(cfg.clone()) {
            Ok(h) => return h,
            Err(e) => {
                assert!(Instant::now() < deadline, "reopen failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// join_all runs the futures concurrently on the calling task until all are done.
pub async fn join_all<F: std::future::Future>(fs: Vec<F>) {
    let mut pending: Vec<_> = fs.into_iter().map(Box::pin).map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut left = 0;
        for slot in pending.iter_mut() {
            if let Some(f) = slot {
                if f.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    left += 1;
                }
            }
        }
        if left == 0 {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}
