// The engine README's "Using the engine from Rust" example, verbatim: three hosts in one
// process on loopback, one shard with a voter on each, a write, a commit and two reads.

use std::io::{Read, Write};
use std::time::Duration;

use zongzi_engine::{ApplyResult, Host, HostConfig, SmEntry, SmError, StartMode, StateMachine};

/// Counter adds the number in each entry to a total; any query returns the total.
#[derive(Default)]
struct Counter(u64);

impl StateMachine for Counter {
    fn update(&mut self, entries: &[SmEntry]) -> Result<Vec<ApplyResult>, SmError> {
        let mut results = Vec::with_capacity(entries.len());
        for e in entries {
            let n: u64 = String::from_utf8_lossy(&e.data).parse().unwrap_or(0);
            self.0 += n;
            results.push(ApplyResult {
                value: self.0,
                data: Vec::new(),
            });
        }
        Ok(results)
    }
    fn query(&self, _query: &[u8]) -> Result<Vec<u8>, SmError> {
        Ok(self.0.to_string().into_bytes())
    }
    fn save_snapshot(&self, w: &mut dyn Write) -> Result<(), SmError> {
        w.write_all(&self.0.to_le_bytes())
            .map_err(|e| SmError(e.to_string()))
    }
    fn recover_from_snapshot(&mut self, _index: u64, r: &mut dyn Read) -> Result<(), SmError> {
        let mut b = [0; 8];
        r.read_exact(&mut b).map_err(|e| SmError(e.to_string()))?;
        self.0 = u64::from_le_bytes(b);
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Three hosts, here in one process on 127.0.0.1 (ephemeral ports); usually one per machine.
    let root = std::env::temp_dir().join(format!("zongzi-example-{}", std::process::id()));
    let mut hosts = Vec::new();
    for i in 0..3 {
        let config = HostConfig::new(/* cluster id */ 7, root.join(format!("h{i}")));
        hosts.push(Host::open(config)?);
    }
    // Every initial voter is started with the same map of replica id → transport address.
    let voters: Vec<(u64, String)> = (1..)
        .zip(&hosts)
        .map(|(id, h)| (id, h.raft_address().to_string()))
        .collect();
    for (id, h) in (1..).zip(&hosts) {
        let mode = StartMode::Bootstrap(voters.clone());
        let sm = Box::new(Counter::default());
        h.start_replica(/* shard */ 1, /* replica */ id, mode, sm)?;
    }

    // Calls wait for a leader within their timeout, so there is no need to wait for one here.
    let t = Duration::from_secs(5);
    let result = hosts[0].propose(1, b"5".to_vec(), t).await?; // applied; followers forward
    let index = hosts[1].commit(1, b"2".to_vec(), t).await?; // committed at this log index
    let total = hosts[2].read(1, b"", t).await?; // linearizable
    let local = hosts[2].stale_read(1, b"")?; // this replica's state, which may lag
    println!("applied {}, committed at {index}", result.value);
    let (total, local) = (String::from_utf8(total)?, String::from_utf8(local)?);
    println!("read {total}, local {local}");

    drop(hosts); // closes every host
    std::fs::remove_dir_all(&root)?;
    Ok(())
}
