//! bench: hosts in one process over loopback TCP, fsync on, a small KV state machine.
//!
//! Write load: `--hosts 3 --shards 48 --clients 1024 --payload 16 --seconds 10`. Each client
//! proposes to its shard's leader in a loop and waits for the applied result.
//! Idle load: `--idle --shards 1000 --seconds 10` starts the shards, lets them settle and
//! measures the CPU the process uses while nothing is written. `--tls` runs the transport over
//! mutual TLS, with certificates made for the run; `--no-quiesce` keeps idle shards ticking.
//! The last line printed is one JSON object with the results.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zongzi_engine::{
    ApplyResult, Host, HostConfig, SmEntry, SmError, StartMode, StateMachine, TlsFiles,
};

#[derive(Default)]
struct Kv(HashMap<Vec<u8>, Vec<u8>>);

impl StateMachine for Kv {
    fn update(&mut self, entries: &[SmEntry]) -> Result<Vec<ApplyResult>, SmError> {
        Ok(entries
            .iter()
            .map(|e| {
                let k = e.data[..e.data.len().min(8)].to_vec();
                self.0.insert(k, e.data.clone());
                ApplyResult {
                    value: e.index,
                    data: Vec::new(),
                }
            })
            .collect())
    }
    fn query(&self, q: &[u8]) -> Result<Vec<u8>, SmError> {
        Ok(self.0.get(q).cloned().unwrap_or_default())
    }
    fn save_snapshot(&self, w: &mut dyn Write) -> Result<(), SmError> {
        for (k, v) in &self.0 {
            let e = |e: std::io::Error| SmError(e.to_string());
            w.write_all(&(k.len() as u32).to_le_bytes()).map_err(e)?;
            w.write_all(k).map_err(e)?;
            w.write_all(&(v.len() as u32).to_le_bytes()).map_err(e)?;
            w.write_all(v).map_err(e)?;
        }
        Ok(())
    }
    fn recover_from_snapshot(&mut self, _index: u64, r: &mut dyn Read) -> Result<(), SmError> {
        let mut b = Vec::new();
        r.read_to_end(&mut b).map_err(|e| SmError(e.to_string()))?;
        self.0.clear();
        let mut p = &b[..];
        let take = |p: &mut &[u8]| -> Option<Vec<u8>> {
            let n = u32::from_le_bytes(p.get(..4)?.try_into().ok()?) as usize;
            let v = p.get(4..4 + n)?.to_vec();
            *p = &p[4 + n..];
            Some(v)
        };
        while !p.is_empty() {
            let (Some(k), Some(v)) = (take(&mut p), take(&mut p)) else {
                return Err(SmError("corrupt snapshot".into()));
            };
            self.0.insert(k, v);
        }
        Ok(())
    }
}

struct Args {
    hosts: usize,
    shards: u64,
    clients: usize,
    payload: usize,
    seconds: u64,
    idle: bool,
    workers: usize,
    /// Mutual TLS on the transport, with certificates made for the run.
    tls: bool,
    /// Idle shards keep ticking (`--no-quiesce`).
    no_quiesce: bool,
    /// Entries between snapshots (`--snapshot-entries`, 0: none); the host's default otherwise.
    snapshot_entries: Option<u64>,
}

fn args() -> Args {
    let mut a = Args {
        hosts: 3,
        shards: 48,
        clients: 1024,
        payload: 16,
        seconds: 10,
        idle: false,
        workers: 2,
        tls: false,
        no_quiesce: false,
        snapshot_entries: None,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let num = |i: usize| -> u64 {
            v.get(i + 1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| {
                    eprintln!("{} needs a number", v[i]);
                    std::process::exit(2)
                })
        };
        match v[i].as_str() {
            "--hosts" => a.hosts = num(i) as usize,
            "--shards" => a.shards = num(i),
            "--clients" => a.clients = num(i) as usize,
            "--payload" => a.payload = num(i) as usize,
            "--seconds" => a.seconds = num(i),
            "--workers" => a.workers = num(i) as usize,
            "--snapshot-entries" => a.snapshot_entries = Some(num(i)),
            "--idle" => {
                a.idle = true;
                i += 1;
                continue;
            }
            "--no-quiesce" => {
                a.no_quiesce = true;
                i += 1;
                continue;
            }
            "--tls" => {
                a.tls = true;
                i += 1;
                continue;
            }
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2)
            }
        }
        i += 2;
    }
    a
}

/// certificates writes a CA and one certificate for 127.0.0.1 that every host presents.
fn certificates(dir: &std::path::Path) -> TlsFiles {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let issuer = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("key")).expect("CA");
    let key = KeyPair::generate().expect("key");
    let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("parameters");
    let cert = params.signed_by(&key, &issuer).expect("certificate");
    let files = TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("host.pem"),
        key: dir.join("host.key"),
    };
    std::fs::write(&files.ca, issuer.pem()).expect("write");
    std::fs::write(&files.cert, cert.pem()).expect("write");
    std::fs::write(&files.key, key.serialize_pem()).expect("write");
    files
}

fn rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// cpu_seconds is the user + system CPU time this process has used.
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let a = args();
    let tmp = tempfile::tempdir().expect("temp dir");
    let tls = a.tls.then(|| certificates(tmp.path()));
    let mut hosts = Vec::new();
    for i in 0..a.hosts {
        let mut c = HostConfig::new(1, tmp.path().join(format!("host{i}")));
        c.workers = a.workers;
        c.tls = tls.clone();
        c.quiesce = !a.no_quiesce;
        if let Some(n) = a.snapshot_entries {
            c.snapshot_entries = n;
        }
        hosts.push(Arc::new(Host::open(c).expect("open host")));
    }
    let t0 = Instant::now();
    for s in 1..=a.shards {
        let voters: Vec<(u64, String)> = (0..a.hosts)
            .map(|i| (s * 16 + i as u64 + 1, hosts[i].raft_address().to_string()))
            .collect();
        for (i, h) in hosts.iter().enumerate() {
            h.start_replica(
                s,
                s * 16 + i as u64 + 1,
                StartMode::Bootstrap(voters.clone()),
                Box::new(Kv::default()),
            )
            .expect("start replica");
        }
    }
    // Wait for every shard to have a leader and note which host holds it.
    let mut leader_host = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while (leader_host.len() as u64) < a.shards && Instant::now() < deadline {
        for s in 1..=a.shards {
            if leader_host.contains_key(&s) {
                continue;
            }
            for (i, h) in hosts.iter().enumerate() {
                if let Ok(st) = h.status(s).await {
                    if st.leader_id != 0 && st.leader_id == st.replica_id {
                        leader_host.insert(s, i);
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "{} shards on {} hosts ready in {:.1}s",
        a.shards,
        a.hosts,
        t0.elapsed().as_secs_f64()
    );

    if a.idle {
        // Settle: every replica quiesces after three idle election timeouts (when the hosts
        // quiesce idle shards, as they do by default); then measure.
        let replicas = a.shards as usize * a.hosts;
        let settle = Instant::now() + Duration::from_secs(20);
        tokio::time::sleep(Duration::from_secs(2)).await;
        while Instant::now() < settle
            && hosts.iter().map(|h| h.quiesced_replicas()).sum::<usize>() < replicas
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let c0 = cpu_seconds();
        let w0 = Instant::now();
        tokio::time::sleep(Duration::from_secs(a.seconds)).await;
        let cpu = (cpu_seconds() - c0) / w0.elapsed().as_secs_f64() * 100.0;
        let quiesced: usize = hosts.iter().map(|h| h.quiesced_replicas()).sum();
        println!(
            "{{\"mode\":\"idle\",\"hosts\":{},\"replicas\":{},\"replicas_per_host\":{},\"quiesced\":{},\"cpu_percent\":{:.1},\"cpu_percent_per_host\":{:.1},\"rss_mb\":{:.1}}}",
            a.hosts, replicas, a.shards, quiesced, cpu, cpu / a.hosts as f64, rss_mb()
        );
        for h in &hosts {
            h.close();
        }
        return;
    }

    let syncs0: u64 = hosts.iter().map(|h| h.synced_writes()).sum();
    let start = Instant::now();
    let end = start + Duration::from_secs(a.seconds);
    let mut tasks = Vec::new();
    for c in 0..a.clients {
        let shard = (c as u64 % a.shards) + 1;
        let host = hosts[*leader_host.get(&shard).unwrap_or(&0)].clone();
        let payload = a.payload;
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut n = 0u64;
            while Instant::now() < end {
                let mut data = vec![0u8; payload];
                let key = (c as u64) << 32 | (n & 0xffff);
                data[..8.min(payload)].copy_from_slice(&key.to_le_bytes()[..8.min(payload)]);
                let t = Instant::now();
                match host.propose(shard, data, Duration::from_secs(5)).await {
                    Ok(_) => lat.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32),
                    Err(_) => errors += 1,
                }
                n += 1;
            }
            (lat, errors)
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.expect("client task");
        lat.extend(l);
        errors += e;
    }
    let secs = start.elapsed().as_secs_f64();
    let syncs: u64 = hosts.iter().map(|h| h.synced_writes()).sum::<u64>() - syncs0;
    lat.sort_unstable();
    let rss = rss_mb();
    for h in &hosts {
        h.close();
    }
    println!(
        "{{\"mode\":\"write\",\"hosts\":{},\"shards\":{},\"clients\":{},\"payload\":{},\"seconds\":{:.1},\"writes\":{},\"errors\":{},\"writes_per_sec\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"fsyncs_per_sec\":{:.0},\"rss_mb\":{:.1},\"tls\":{}}}",
        a.hosts,
        a.shards,
        a.clients,
        a.payload,
        secs,
        lat.len(),
        errors,
        lat.len() as f64 / secs,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 0.999),
        syncs as f64 / secs,
        rss,
        a.tls
    );
}
