//! A panic in any engine thread stops the whole host, loudly: it stops taking part in
//! consensus, its calls reject with ERR_HOST_FAILED, it reports `HostFailed` with the cause,
//! and the other hosts carry on with new leaders. The process lives on.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use zongzi_engine::{ApplyResult, BatchItem, BatchUpdater, Event, HostConfig, SmError};

/// host_failure waits for host `i` to report `HostFailed` and returns its cause.
async fn host_failure(c: &Cluster, i: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = c.nodes[i].events.lock().iter().find_map(|e| match e {
            Event::HostFailed { error } => Some(error.clone()),
            _ => None,
        });
        if let Some(e) = found {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "host {i} never reported a failure"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// survivors_serve checks that the hosts other than `failed` elect leaders among
/// themselves and serve both shards, and that the failed host refuses every call.
async fn survivors_serve(c: &Cluster, failed: usize) {
    for shard in [1u64, 2] {
        let e = c.nodes[failed]
            .host()
            .propose(shard, b"k=v".to_vec(), T)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "ERR_HOST_FAILED", "{e}");
        let e = c.nodes[failed].host().status(shard).await.unwrap_err();
        assert_eq!(e.code(), "ERR_HOST_FAILED", "{e}");
        let other = (failed + 1) % 3;
        c.put(other, shard, "after", "1").await;
        let st = c.nodes[other].host().status(shard).await.unwrap();
        assert_ne!(
            st.leader_id,
            rid(shard, failed),
            "the failed host still leads"
        );
        // Both survivors serve linearizable reads of the same state.
        let third = (failed + 2) % 3;
        assert_eq!(
            c.get(third, shard, "after").await,
            c.get(other, shard, "after").await
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_step_worker_stops_the_whole_host() {
    let c = Cluster::new(3);
    // Shards 1 and 2 live on different step workers of each host.
    c.bootstrap(1, &[0, 1, 2]);
    c.bootstrap(2, &[0, 1, 2]);
    let l = c.leader(1).await;
    c.put(l, 1, "a", "1").await;
    c.put(l, 2, "a", "1").await;
    // The next message the leader's host sends panics inside its step worker.
    c.nodes[l]
        .host()
        .set_link_filter(Some(Arc::new(|_: &str| panic!("injected link failure"))));
    let cause = host_failure(&c, l).await;
    assert!(
        cause.contains("step worker panicked: injected link failure"),
        "{cause}"
    );
    survivors_serve(&c, l).await;
}

/// Boom panics the apply thread of one host when it applies `boom`.
struct Boom {
    armed: Arc<AtomicBool>,
    inner: Arc<dyn BatchUpdater>,
}

impl BatchUpdater for Boom {
    fn update_batch(&self, batch: &[BatchItem<'_>]) -> Vec<Result<Vec<ApplyResult>, SmError>> {
        let boom = batch
            .iter()
            .any(|item| item.entries.iter().any(|e| e.data == b"boom=1"));
        if boom && self.armed.load(Ordering::Relaxed) {
            panic!("injected apply failure");
        }
        self.inner.update_batch(batch)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_an_apply_thread_stops_the_whole_host() {
    let book = common::recorder::Book::default();
    let (b, armed) = (book.clone(), Arc::new(AtomicBool::new(false)));
    let a = armed.clone();
    let tweak: Tweak = Arc::new(move |i: usize, cfg: &mut HostConfig| {
        let inner = b.updater(i, Duration::ZERO);
        let armed = if i == 0 { a.clone() } else { Arc::default() };
        cfg.batch_updater = Some(Arc::new(Boom { armed, inner }));
    });
    let b = book.clone();
    let c = Cluster::custom(3, tweak, Arc::new(move |s, i| b.recorder(i, s)));
    c.bootstrap(1, &[0, 1, 2]);
    c.bootstrap(2, &[0, 1, 2]);
    c.put(1, 1, "a", "1").await;
    c.put(1, 2, "a", "1").await;
    armed.store(true, Ordering::Relaxed);
    c.put(1, 1, "boom", "1").await; // applies on hosts 1 and 2, panics host 0
    let cause = host_failure(&c, 0).await;
    assert!(
        cause.contains("apply thread panicked: injected apply failure"),
        "{cause}"
    );
    survivors_serve(&c, 0).await;
}
