//! host_process: one engine host in its own process, used by the crash tests.
//!
//! `host_process <data dir> <listen addr> <shard> <replica> [<id>=<addr> ...]` opens a host,
//! bootstraps the shard with the given voters (or restarts it from disk when the directory
//! already holds it), prints `ready` and then serves until killed or until stdin closes.
//! Each stdin line `count` is answered with `count <n>`: the number of entries applied, read
//! linearizably; `members` with `members <voters> <non-voters>`, each a comma-separated list
//! of the shard's membership as this replica sees it. `HOST_PROCESS_SNAPSHOT_ENTRIES` sets the
//! snapshot interval (default: none). With `HOST_PROCESS_PERSISTENT=1` the state machine is
//! persistent: it syncs its count and applied index to `<data dir>/counter` in every batch.

use std::io::BufRead;
use std::time::Duration;

use zongzi_engine::{ApplyResult, Host, HostConfig, SmEntry, SmError, StartMode, StateMachine};

/// Counter counts applied entries; enough for a peer that only has to keep its log.
#[derive(Default)]
struct Counter(u64);

impl StateMachine for Counter {
    fn update(&mut self, entries: &[SmEntry]) -> Result<Vec<ApplyResult>, SmError> {
        Ok(entries
            .iter()
            .map(|_| {
                self.0 += 1;
                ApplyResult {
                    value: self.0,
                    data: Vec::new(),
                }
            })
            .collect())
    }
    fn query(&self, _: &[u8]) -> Result<Vec<u8>, SmError> {
        Ok(self.0.to_string().into_bytes())
    }
    fn save_snapshot(&self, w: &mut dyn std::io::Write) -> Result<(), SmError> {
        w.write_all(&self.0.to_le_bytes())
            .map_err(|e| SmError(e.to_string()))
    }
    fn recover_from_snapshot(
        &mut self,
        _index: u64,
        r: &mut dyn std::io::Read,
    ) -> Result<(), SmError> {
        let mut b = [0u8; 8];
        r.read_exact(&mut b).map_err(|e| SmError(e.to_string()))?;
        self.0 = u64::from_le_bytes(b);
        Ok(())
    }
}

/// Durable is a counter that keeps its count and applied index in a file, synced in every
/// batch: a persistent state machine, reopened at the index it last made durable.
struct Durable {
    path: std::path::PathBuf,
    count: u64,
    index: u64,
}

impl Durable {
    fn store(&self) -> Result<(), SmError> {
        let e = |e: std::io::Error| SmError(e.to_string());
        let tmp = self.path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).map_err(e)?;
        std::io::Write::write_all(&mut f, format!("{} {}", self.count, self.index).as_bytes())
            .map_err(e)?;
        f.sync_all().map_err(e)?;
        std::fs::rename(&tmp, &self.path).map_err(e)
    }
}

impl StateMachine for Durable {
    fn open(&mut self) -> Result<u64, SmError> {
        if let Ok(s) = std::fs::read_to_string(&self.path) {
            let mut it = s.split(' ').map(|v| v.trim().parse::<u64>());
            if let (Some(Ok(c)), Some(Ok(i))) = (it.next(), it.next()) {
                (self.count, self.index) = (c, i);
            }
        }
        Ok(self.index)
    }
    fn update(&mut self, entries: &[SmEntry]) -> Result<Vec<ApplyResult>, SmError> {
        let out = entries
            .iter()
            .map(|e| {
                self.count += 1;
                self.index = e.index;
                ApplyResult {
                    value: self.count,
                    data: Vec::new(),
                }
            })
            .collect();
        self.store()?;
        Ok(out)
    }
    fn query(&self, _: &[u8]) -> Result<Vec<u8>, SmError> {
        Ok(self.count.to_string().into_bytes())
    }
    fn save_snapshot(&self, w: &mut dyn std::io::Write) -> Result<(), SmError> {
        w.write_all(&self.count.to_le_bytes())
            .map_err(|e| SmError(e.to_string()))
    }
    fn recover_from_snapshot(
        &mut self,
        index: u64,
        r: &mut dyn std::io::Read,
    ) -> Result<(), SmError> {
        let mut b = [0u8; 8];
        r.read_exact(&mut b).map_err(|e| SmError(e.to_string()))?;
        (self.count, self.index) = (u64::from_le_bytes(b), index);
        self.store()
    }
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() < 4 {
        eprintln!("usage: host_process <dir> <addr> <shard> <replica> [<id>=<addr> ...]");
        std::process::exit(2);
    }
    let mut cfg = HostConfig::new(7, &a[0]);
    cfg.raft_address = a[1].clone();
    cfg.tick_ms = 10;
    cfg.snapshot_entries = std::env::var("HOST_PROCESS_SNAPSHOT_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let shard: u64 = a[2].parse().expect("shard id");
    let replica: u64 = a[3].parse().expect("replica id");
    let voters: Vec<(u64, String)> = a[4..]
        .iter()
        .map(|v| {
            let (id, addr) = v.split_once('=').expect("<id>=<addr>");
            (id.parse().expect("voter id"), addr.to_string())
        })
        .collect();
    let host = loop {
        match Host::open(cfg.clone()) {
            Ok(h) => break h,
            // The previous incarnation's port can take a moment to free up.
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let mode = if host.stored_replicas().iter().any(|(s, _)| *s == shard) {
        StartMode::Restart
    } else {
        StartMode::Bootstrap(voters)
    };
    let sm: Box<dyn StateMachine> = match std::env::var("HOST_PROCESS_PERSISTENT").as_deref() {
        Ok("1") => Box::new(Durable {
            path: std::path::Path::new(&a[0]).join("counter"),
            count: 0,
            index: 0,
        }),
        _ => Box::<Counter>::default(),
    };
    host.start_replica(shard, replica, mode, sm)
        .expect("start replica");
    println!("ready");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Serve until the parent goes away.
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "count" => match rt.block_on(host.read(shard, b"", Duration::from_secs(5))) {
                Ok(n) => println!("count {}", String::from_utf8_lossy(&n)),
                Err(e) => println!("error {e}"),
            },
            "members" => match rt.block_on(host.status(shard)) {
                Ok(s) => println!(
                    "members {} {}",
                    list(&s.membership.voters),
                    list(&s.membership.non_voters)
                ),
                Err(e) => println!("error {e}"),
            },
            _ => {}
        }
    }
    host.close();
}

fn list(ids: &[u64]) -> String {
    let v: Vec<String> = ids.iter().map(u64::to_string).collect();
    v.join(",")
}
