//! Mutual TLS on the transport: hosts with certificates of the cluster CA form a cluster;
//! a host whose certificate another CA signed, or a peer without TLS, gets nothing through.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use zongzi_engine::{HostConfig, StartMode, TlsFiles, MAGIC_MESSAGES};

/// Ca signs host certificates for 127.0.0.1 into PEM files.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    /// host writes `<name>.crt`, `<name>.key` and the CA's `ca.crt` into `dir`.
    fn host(&self, dir: &Path, name: &str) -> TlsFiles {
        std::fs::create_dir_all(dir).unwrap();
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let files = TlsFiles {
            ca: dir.join("ca.crt"),
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.ca, self.issuer.pem()).unwrap();
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }
}

/// secured opens `n` hosts whose transport uses certificates from `ca_of(i)`.
fn secured(n: usize, root: PathBuf, ca_of: impl Fn(usize) -> Arc<Ca>) -> Cluster {
    let files: Vec<TlsFiles> = (0..n)
        .map(|i| ca_of(i).host(&root.join(format!("tls{i}")), &format!("host{i}")))
        .collect();
    let tweak: Tweak = Arc::new(move |i, cfg: &mut HostConfig| cfg.tls = Some(files[i].clone()));
    Cluster::custom(n, tweak, Arc::new(|_, _| Kv::boxed()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_with_certificates_of_the_cluster_ca_replicate_over_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Arc::new(Ca::new());
    let c = secured(3, tmp.path().to_path_buf(), |_| ca.clone());
    c.bootstrap(1, &[0, 1, 2]);
    c.put(0, 1, "a", "1").await;
    for i in 0..3 {
        assert_eq!(c.get(i, 1, "a").await, "1");
    }
    // Rotated certificates are read again; a broken file is refused and the old ones stay.
    ca.host(&tmp.path().join("tls0"), "host0");
    c.nodes[0].host().reload_tls().unwrap();
    std::fs::write(tmp.path().join("tls0").join("host0.key"), "not a key").unwrap();
    let e = c.nodes[0].host().reload_tls().unwrap_err();
    assert_eq!(e.code(), "ERR_INVALID_ARGUMENT", "{e}");
    c.put(1, 1, "b", "2").await;
    assert_eq!(c.get(0, 1, "b").await, "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_of_another_ca_gets_nothing_through() {
    let tmp = tempfile::tempdir().unwrap();
    let (ca, other) = (Arc::new(Ca::new()), Arc::new(Ca::new()));
    // Host 2 has a certificate the others do not trust, and it trusts only its own CA.
    let c = secured(3, tmp.path().to_path_buf(), |i| {
        if i == 2 {
            other.clone()
        } else {
            ca.clone()
        }
    });
    let voters: Vec<(u64, String)> = (0..3)
        .map(|i| (rid(1, i), c.nodes[i].addr.clone()))
        .collect();
    c.bootstrap_with(1, &[0, 1], &voters);
    c.put(0, 1, "a", "1").await;
    c.nodes[2]
        .host()
        .start_replica(1, rid(1, 2), StartMode::Bootstrap(voters), Kv::boxed())
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Host 2 never hears from the others, so it never learns of a leader or the write.
    let st = c.nodes[2].host().status(1).await.unwrap();
    assert_eq!(st.applied, 1, "{st:?}");
    let stale = c.nodes[2].host().stale_read(1, b"a").unwrap();
    assert!(stale.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_tcp_frame_to_a_tls_host_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Arc::new(Ca::new());
    let c = secured(3, tmp.path().to_path_buf(), |_| ca.clone());
    c.bootstrap(1, &[0, 1, 2]);
    c.put(0, 1, "a", "1").await;
    let before = c.nodes[0].host().dropped_messages();
    // A well-formed frame of this cluster carrying a heartbeat for a replica that does not
    // exist, sent without TLS: were it read, the host would count it as dropped.
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgHeartbeat);
    m.to = 999;
    let body = m.write_to_bytes().unwrap();
    let mut p = 0u16.to_le_bytes().to_vec();
    p.extend_from_slice(&1u64.to_le_bytes());
    p.extend_from_slice(&(body.len() as u32).to_le_bytes());
    p.extend_from_slice(&body);
    let mut f = MAGIC_MESSAGES.to_le_bytes().to_vec();
    f.extend_from_slice(&CLUSTER.to_le_bytes());
    f.extend_from_slice(&(p.len() as u32).to_le_bytes());
    f.extend_from_slice(&crc32fast::hash(&p).to_le_bytes());
    f.extend_from_slice(&p);
    let addr = c.nodes[0].addr.clone();
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&addr).unwrap();
        let _ = s.write_all(&f);
        std::thread::sleep(Duration::from_millis(200));
    })
    .await
    .unwrap();
    assert_eq!(
        c.nodes[0].host().dropped_messages(),
        before,
        "the frame was read"
    );
    c.put(0, 1, "b", "2").await;
    assert_eq!(c.get(2, 1, "b").await, "2");
}
