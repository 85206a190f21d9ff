//! A host in a process of its own (the `host_process` binary), for the crash tests: start it,
//! talk to it over stdin and stdout, and watch its stderr for failpoints.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use super::rid;

/// host_process_bin is the path of the `host_process` binary.
pub fn host_process_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_host_process"))
}

/// spawn starts the child host (shard 1, as its third replica) with the given voters.
pub fn spawn(dir: &std::path::Path, addr: &str, voters: &[(u64, String)]) -> Child {
    spawn_with(dir, addr, voters, &[])
}

/// spawn_with starts the child host with extra environment variables; its stderr is piped.
pub fn spawn_with(
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

/// child_voters are shard 1's voters: the first two hosts of `c` and the child at `addr`.
pub fn child_voters(c: &super::Cluster, addr: &str) -> Vec<(u64, String)> {
    vec![
        (rid(1, 0), c.nodes[0].addr.clone()),
        (rid(1, 1), c.nodes[1].addr.clone()),
        (rid(1, 2), addr.to_string()),
    ]
}

/// child_addr reserves a loopback port for a child process.
pub fn child_addr() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

/// count asks the child how many entries it has applied, after a linearizable read.
pub fn count(child: &mut Child) -> u64 {
    let line = ask(child, "count");
    let n = line.trim().strip_prefix("count ");
    n.and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("child answered {line:?}"))
}

/// ask sends the child one command and returns its answer line.
fn ask(child: &mut Child, what: &str) -> String {
    writeln!(child.stdin.as_mut().unwrap(), "{what}").unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    line
}

/// members asks the child for the shard's voters and non-voters as it sees them.
pub fn members(child: &mut Child) -> (Vec<u64>, Vec<u64>) {
    let line = ask(child, "members");
    let rest = line
        .trim_end_matches('\n')
        .strip_prefix("members ")
        .unwrap_or_else(|| panic!("child answered {line:?}"));
    let ids = |s: &str| -> Vec<u64> { s.split(',').filter_map(|v| v.parse().ok()).collect() };
    let (voters, non_voters) = rest.split_once(' ').unwrap_or((rest, ""));
    (ids(voters), ids(non_voters))
}

/// stderr_lines hands the child's stderr over line by line.
pub fn stderr_lines(child: &mut Child) -> Receiver<String> {
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(|l| l.ok()) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// await_failpoint waits (at most 20 s) until the child reports reaching failpoint `name`.
pub fn await_failpoint(lines: &Receiver<String>, name: &str) {
    let want = format!("failpoint {name}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) if l.trim() == want => return,
            Ok(_) => continue,
            Err(e) => panic!("the child never reached failpoint {name}: {e}"),
        }
    }
}
