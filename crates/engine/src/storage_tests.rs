use super::*;
use raft::Storage as _;
use std::sync::Arc;

fn tripping_store(dir: &Path) -> (Arc<LogStore>, Arc<Fs>, Arc<Fault>) {
    let fs = Arc::new(Fs::new());
    let store = Arc::new(LogStore::open_on(dir, true, fs.clone()).unwrap());
    let (tx, _rx) = crossbeam_channel::unbounded();
    let router = Arc::new(crate::router::Router::new(vec![tx]));
    let fault = Arc::new(Fault::new(router, None));
    store.trip_on(fault.clone());
    (store, fs, fault)
}

#[test]
fn a_failed_sync_on_any_thread_stops_the_host_and_every_later_write() {
    crate::sim::quiet_injected_panics();
    let dir = tempfile::tempdir().unwrap();
    let (store, fs, fault) = tripping_store(dir.path());
    fs.fail_next_sync();
    // Not a step worker: a caller recording an address.
    let s = store.clone();
    let res = std::thread::spawn(move || s.save_address(None, 1, "127.0.0.1:1"))
        .join()
        .expect("the writer must get an error, not a panic");
    assert!(res.is_err());
    assert!(fault.is_failed(), "the host did not stop");
    let mut batch = LogBatch::default();
    batch
        .put(HOST_REGION, b"k".to_vec(), b"v".to_vec())
        .unwrap();
    let later = store.write(&mut batch).unwrap_err();
    assert_eq!(later.code(), "ERR_HOST_FAILED");
}

#[test]
fn a_write_returns_only_after_the_writes_in_flight_beside_it() {
    let w = Arc::new(InFlight::default());
    let first = w.begin();
    let (w2, done) = (
        w.clone(),
        Arc::new(std::sync::atomic::AtomicBool::new(false)),
    );
    let d = done.clone();
    let second = std::thread::spawn(move || {
        let t = w2.begin();
        w2.end(t);
        d.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(!done.load(std::sync::atomic::Ordering::SeqCst));
    w.end(first);
    second.join().unwrap();
    assert!(done.load(std::sync::atomic::Ordering::SeqCst));
}

#[test]
fn a_read_cut_short_by_its_size_reserves_little_of_a_long_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(LogStore::open(dir.path(), false).unwrap());
    let mut s = ReplicaStorage::create(store.clone(), 1, 1, None).unwrap();
    let entries: Vec<Entry> = (1..=20_000)
        .map(|index| Entry {
            index,
            term: 1,
            data: vec![7; 8].into(),
            ..Default::default()
        })
        .collect();
    let mut batch = LogBatch::default();
    s.append(&mut batch, &entries).unwrap();
    store.write(&mut batch).unwrap();
    for low in [1, 19_000] {
        let ctx = GetEntriesContext::empty(false);
        let got = s.entries(low, 20_001, 1, ctx).unwrap();
        assert_eq!(got.len(), 1);
        assert!(
            got.capacity() <= RESERVE_ENTRIES,
            "reserved {}",
            got.capacity()
        );
    }
}
