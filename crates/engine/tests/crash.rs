//! A host in its own process is killed with SIGKILL while it leads, or at a chosen point of a
//! snapshot; nothing acknowledged is lost, and it restarts from its disk in agreement with
//! the others.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::recorder::{strictly_increasing, Book};
use common::*;

fn host_process_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_host_process"))
}

fn spawn(dir: &std::path::Path, addr: &str, voters: &[(u64, String)]) -> Child {
    spawn_with(dir, addr, voters, &[])
}

/// spawn_with starts the child host with extra environment variables; its stderr is piped.
fn spawn_with(
    dir: &std::path::Path,
    addr: &str,
    voters: &[(u64, String)],
    env: &[(&str, &str)],
) -> Child {
    let mut cmd = Command::new(host_process_bin());
    cmd.arg(dir).arg(addr).arg("1").arg(rid(1, 2).to_string());
    for (id, a) in voters {
        cmd.arg(format!("{id}={a}"));
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn host_process");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_leader_process_loses_no_acknowledged_write_and_restarts_from_disk() {
    let mut c = Cluster::new(2);
    let child_dir = c.tmp.path().join("child");
    // Reserve a port for the child process.
    let child_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let voters = vec![
        (rid(1, 0), c.nodes[0].addr.clone()),
        (rid(1, 1), c.nodes[1].addr.clone()),
        (rid(1, 2), child_addr.clone()),
    ];
    let mut child = spawn(&child_dir, &child_addr, &voters);
    c.bootstrap_with(1, &[0, 1], &voters);

    // Make the child process the leader.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let st = c.nodes[0].host().status(1).await.unwrap();
        if st.leader_id == rid(1, 2) {
            break;
        }
        if st.leader_id != 0 {
            let l = if st.leader_id == rid(1, 0) { 0 } else { 1 };
            let _ = c.nodes[l].host().transfer_leader(1, rid(1, 2)).await;
        }
        assert!(Instant::now() < deadline, "child never became leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Writes through the in-process hosts are forwarded to the child leader; kill it midway.
    let mut acked = Vec::new();
    for i in 0..200u32 {
        if i == 100 {
            child.kill().unwrap(); // SIGKILL
        }
        let k = format!("k{i}");
        c.put((i % 2) as usize, 1, &k, &i.to_string()).await;
        acked.push(k);
    }
    child.wait().unwrap();
    for (i, k) in acked.iter().enumerate() {
        assert_eq!(c.get(0, 1, k).await, i.to_string());
    }

    // Restart the child from its disk, then stop one in-process host: the remaining quorum
    // needs the restarted process, with its log intact, to commit anything.
    let mut child = spawn(&child_dir, &child_addr, &voters);
    c.stop(0);
    for i in 200..220u32 {
        c.put(1, 1, &format!("k{i}"), &i.to_string()).await;
    }
    for (i, k) in acked.iter().enumerate() {
        assert_eq!(c.get(1, 1, k).await, i.to_string());
    }
    drop(child.stdin.take());
    let _ = child.wait();
}

/// child_addr reserves a loopback port for a child process.
fn child_addr() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

/// count asks the child how many entries it has applied, after a linearizable read.
fn count(child: &mut Child) -> u64 {
    writeln!(child.stdin.as_mut().unwrap(), "count").unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let n = line.trim().strip_prefix("count ");
    n.and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("child answered {line:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_killed_between_saving_a_snapshot_and_recording_it_restarts_in_agreement() {
    let book = Book::default();
    let b = book.clone();
    let c = Cluster::custom(
        2,
        Arc::new(|_, _| {}),
        Arc::new(move |s, i| b.recorder(i, s)),
    );
    let child_dir = c.tmp.path().join("child");
    let addr = child_addr();
    let voters = vec![
        (rid(1, 0), c.nodes[0].addr.clone()),
        (rid(1, 1), c.nodes[1].addr.clone()),
        (rid(1, 2), addr.clone()),
    ];
    let snap_every = ("HOST_PROCESS_SNAPSHOT_ENTRIES", "30");
    let failpoint = ("ZONGZI_FAILPOINTS", "snapshot-saved");
    let mut child = spawn_with(&child_dir, &addr, &voters, &[snap_every, failpoint]);
    c.bootstrap_with(1, &[0, 1], &voters);

    // The child stops at its first snapshot: the file is written, the log store does not
    // know of it yet. It is killed right there.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(|l| l.ok()) {
            let _ = tx.send(line);
        }
    });
    for i in 0..60u32 {
        c.put((i % 2) as usize, 1, &format!("a{i}"), "x").await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.trim() == "failpoint snapshot-saved" => break,
            Ok(_) => continue,
            Err(e) => panic!("the child never reached the failpoint: {e}"),
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let saved = std::fs::read_dir(child_dir.join("snapshots").join("1"))
        .unwrap()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().ends_with(".tmp"))
        .count();
    assert!(saved > 0, "no snapshot file was left by the killed process");

    let mut child = spawn_with(&child_dir, &addr, &voters, &[snap_every]);
    for i in 0..60u32 {
        c.put((i % 2) as usize, 1, &format!("b{i}"), "x").await;
    }
    retry("read", || c.nodes[0].host().read_index(1, T)).await;
    let seen = book.seen(0, 1);
    assert!(strictly_increasing(&seen), "host 0 applied an entry twice");
    assert_eq!(count(&mut child), seen.len() as u64);
    drop(child.stdin.take());
    let _ = child.wait();
}
