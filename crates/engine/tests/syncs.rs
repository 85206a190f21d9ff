//! Log writes are synced when they hold what must survive a crash (entries, a snapshot, a
//! term or a vote); a commit index raised alone is written without a sync.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_index_alone_costs_no_sync() {
    let c = Cluster::new(1);
    c.bootstrap(1, &[0]);
    c.leader(1).await;
    c.put(0, 1, "warm", "up").await;
    let host = c.nodes[0].host();
    let before = host.synced_writes();
    let writes = 20;
    for i in 0..writes {
        c.put(0, 1, &format!("k{i}"), "v").await;
    }
    // One write after another: each entry is synced once; the commit index that follows it
    // (one voter: as soon as the entry is on disk) goes to disk unsynced.
    let synced = host.synced_writes() - before;
    assert!(
        synced < writes + writes / 2,
        "{synced} synced writes for {writes} entries"
    );
}
