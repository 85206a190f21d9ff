//! A host in its own process is killed with SIGKILL while it leads; nothing acknowledged is
//! lost, and it restarts from its disk and serves in a quorum again.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn host_process_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_host_process"))
}

fn spawn(dir: &std::path::Path, addr: &str, voters: &[(u64, String)]) -> Child {
    let mut cmd = Command::new(host_process_bin());
    cmd.arg(dir).arg(addr).arg("1").arg(rid(1, 2).to_string());
    for (id, a) in voters {
        cmd.arg(format!("{id}={a}"));
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
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
