//! The fair queue under tokio's paused clock: who gets each freed turn.

use super::*;
use std::sync::Mutex as StdMutex;

const LONG: Duration = Duration::from_secs(3600);

fn key() -> QueueKey {
    QueueKey {
        index: "idx".into(),
        class: OpClass::Fetch,
    }
}

fn caller(name: &str, priority: Priority, weight: u32) -> Caller {
    Caller {
        label: crate::telemetry::metrics::intern(name),
        priority,
        weight,
    }
}

/// Queues one call for `who`; when it gets the turn it writes its name down and hands the turn on at once.
fn queue(
    q: &Arc<FairQueues>,
    who: Caller,
    served: &Arc<StdMutex<Vec<String>>>,
    starvation: Duration,
) -> tokio::task::JoinHandle<Result<(), NoTurn>> {
    let (q, served) = (q.clone(), served.clone());
    tokio::spawn(async move {
        let turn = q
            .turn(key(), &who, Instant::now() + LONG, 1000, starvation)
            .await?;
        served.lock().unwrap().push(who.label.to_string());
        drop(turn);
        Ok(())
    })
}

/// Takes the free key's turn, so that the next calls queue.
async fn hold(q: &Arc<FairQueues>, starvation: Duration) -> Turn {
    q.turn(
        key(),
        &caller("h", Priority::Default, 1),
        Instant::now(),
        1000,
        starvation,
    )
    .await
    .unwrap()
}

/// Lets every spawned task run until it waits.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_free_key_gives_the_turn_at_once_and_frees_itself() {
    let q = Arc::new(FairQueues::default());
    let who = caller("a", Priority::Default, 1);
    let turn = q.turn(key(), &who, Instant::now(), 10, LONG).await.unwrap();
    assert_eq!(q.lock().len(), 1);
    drop(turn);
    assert_eq!(
        q.lock().len(),
        0,
        "a key nobody holds or waits for is forgotten"
    );
}

#[tokio::test(start_paused = true)]
async fn an_interactive_call_overtakes_waiting_batch_calls() {
    let q = Arc::new(FairQueues::default());
    let served = Arc::new(StdMutex::new(Vec::new()));
    let holder = hold(&q, LONG).await;
    let mut tasks = Vec::new();
    for i in 0..3 {
        tasks.push(queue(
            &q,
            caller(&format!("batch{i}"), Priority::Batch, 1),
            &served,
            LONG,
        ));
        settle().await;
    }
    tasks.push(queue(
        &q,
        caller("search", Priority::Interactive, 1),
        &served,
        LONG,
    ));
    tasks.push(queue(
        &q,
        caller("plain", Priority::Default, 1),
        &served,
        LONG,
    ));
    settle().await;
    assert_eq!(q.waiting(&key()), 5);
    drop(holder);
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(
        *served.lock().unwrap(),
        ["search", "plain", "batch0", "batch1", "batch2"]
    );
}

#[tokio::test(start_paused = true)]
async fn within_one_caller_calls_keep_their_order() {
    let q = Arc::new(FairQueues::default());
    let served = Arc::new(StdMutex::new(Vec::new()));
    let holder = hold(&q, LONG).await;
    let mut tasks = Vec::new();
    for i in 0..5 {
        let who = caller("job", Priority::Batch, 1);
        let (q, served) = (q.clone(), served.clone());
        tasks.push(tokio::spawn(async move {
            let t = q.turn(key(), &who, Instant::now() + LONG, 10, LONG).await;
            served.lock().unwrap().push(i);
            drop(t);
        }));
        settle().await;
    }
    drop(holder);
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(*served.lock().unwrap(), [0, 1, 2, 3, 4]);
}

#[tokio::test(start_paused = true)]
async fn weights_three_to_one_share_a_saturated_limit_75_25() {
    let q = Arc::new(FairQueues::default());
    let served = Arc::new(StdMutex::new(Vec::new()));
    let holder = hold(&q, LONG).await;
    // Each caller keeps 20 calls waiting: one served is replaced by the next.
    let mut tasks = Vec::new();
    for (name, weight) in [("heavy", 3), ("light", 1)] {
        for _ in 0..20 {
            let (q, served) = (q.clone(), served.clone());
            let who = caller(name, Priority::Default, weight);
            tasks.push(tokio::spawn(async move {
                loop {
                    let t = q.turn(key(), &who, Instant::now() + LONG, 1000, LONG).await;
                    let n = {
                        let mut s = served.lock().unwrap();
                        s.push(who.label.to_string());
                        s.len()
                    };
                    // The turn is held while the call waits for its reserved instant (one spacing of the limit).
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    drop(t);
                    if n >= 400 {
                        return;
                    }
                    tokio::task::yield_now().await;
                }
            }));
        }
    }
    settle().await;
    drop(holder);
    while served.lock().unwrap().len() < 400 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let s = served.lock().unwrap()[..400].to_vec();
    let heavy = s.iter().filter(|n| *n == "heavy").count() as f64 / 400.0;
    assert!(
        (0.70..=0.80).contains(&heavy),
        "heavy got {heavy}: {:?}",
        &s[..30]
    );
    for t in tasks {
        t.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn a_starved_batch_call_goes_first_after_the_bound() {
    let q = Arc::new(FairQueues::default());
    let served = Arc::new(StdMutex::new(Vec::new()));
    let bound = Duration::from_millis(500);
    let holder = hold(&q, bound).await;
    let batch = queue(&q, caller("batch", Priority::Batch, 1), &served, bound);
    settle().await;
    tokio::time::advance(Duration::from_millis(300)).await;
    let early = queue(
        &q,
        caller("search", Priority::Interactive, 1),
        &served,
        bound,
    );
    settle().await;
    tokio::time::advance(Duration::from_millis(250)).await;
    let late = queue(
        &q,
        caller("search2", Priority::Interactive, 1),
        &served,
        bound,
    );
    settle().await;
    // The batch call has waited 550 ms, past the bound: it goes before both interactive calls.
    drop(holder);
    for t in [batch, early, late] {
        t.await.unwrap().unwrap();
    }
    assert_eq!(*served.lock().unwrap(), ["batch", "search", "search2"]);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_refuses_at_once_and_a_call_that_gives_up_leaves_it() {
    let q = Arc::new(FairQueues::default());
    let who = caller("a", Priority::Default, 1);
    let holder = q.turn(key(), &who, Instant::now(), 1, LONG).await.unwrap();
    let waiting = {
        let (q, who) = (q.clone(), who.clone());
        tokio::spawn(async move {
            q.turn(
                key(),
                &who,
                Instant::now() + Duration::from_millis(100),
                1,
                LONG,
            )
            .await
            .map(drop)
        })
    };
    settle().await;
    assert_eq!(
        q.turn(key(), &who, Instant::now() + LONG, 1, LONG)
            .await
            .err(),
        Some(NoTurn::Full { waiting: 1 })
    );
    tokio::time::advance(Duration::from_millis(150)).await;
    assert_eq!(waiting.await.unwrap(), Err(NoTurn::GaveUp { ahead: 0 }));
    assert_eq!(q.waiting(&key()), 0);
    drop(holder);
    assert_eq!(q.lock().len(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_caller_that_goes_away_as_it_is_handed_the_turn_hands_it_on() {
    let q = Arc::new(FairQueues::default());
    let served = Arc::new(StdMutex::new(Vec::new()));
    let who = caller("a", Priority::Default, 1);
    let holder = q.turn(key(), &who, Instant::now(), 10, LONG).await.unwrap();
    let gone = {
        let (q, who) = (q.clone(), who.clone());
        tokio::spawn(async move {
            q.turn(key(), &who, Instant::now() + LONG, 10, LONG)
                .await
                .map(drop)
        })
    };
    settle().await;
    let next = queue(&q, caller("b", Priority::Default, 1), &served, LONG);
    settle().await;
    // The turn goes to `gone`, whose task is cancelled before it runs again.
    drop(holder);
    gone.abort();
    next.await.unwrap().unwrap();
    assert_eq!(*served.lock().unwrap(), ["b"]);
    assert_eq!(q.lock().len(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_makes_room_for_a_higher_priority_by_refusing_the_newest_lower_call() {
    let q = Arc::new(FairQueues::default());
    let served = Arc::new(StdMutex::new(Vec::new()));
    let turn = |who: Caller| {
        let (q, served) = (q.clone(), served.clone());
        tokio::spawn(async move {
            let t = q.turn(key(), &who, Instant::now() + LONG, 2, LONG).await?;
            served.lock().unwrap().push(who.label.to_string());
            drop(t);
            Ok::<_, NoTurn>(())
        })
    };
    let holder = hold(&q, LONG).await;
    let old = turn(caller("batch-old", Priority::Batch, 1));
    settle().await;
    let new = turn(caller("batch-new", Priority::Batch, 1));
    settle().await;
    // Full (2 waiting): another batch call is refused; an interactive one takes the newest batch call's place.
    let refused = turn(caller("batch-late", Priority::Batch, 1));
    settle().await;
    let search = turn(caller("search", Priority::Interactive, 1));
    settle().await;
    assert_eq!(refused.await.unwrap(), Err(NoTurn::Full { waiting: 2 }));
    assert_eq!(new.await.unwrap(), Err(NoTurn::Displaced));
    drop(holder);
    search.await.unwrap().unwrap();
    old.await.unwrap().unwrap();
    assert_eq!(*served.lock().unwrap(), ["search", "batch-old"]);
    assert_eq!(q.lock().len(), 0);
}

#[tokio::test(start_paused = true)]
async fn under_sustained_higher_load_lower_priorities_get_one_turn_per_bound() {
    let q = Arc::new(FairQueues::default());
    let bound = Duration::from_secs(1);
    let start = Instant::now();
    let served = Arc::new(StdMutex::new(Vec::new()));
    let holder = hold(&q, bound).await;
    // Each turn is held 100 ms; interactive calls are always waiting; three batch calls wait from the start.
    let spawn = |who: Caller, repeat: bool| {
        let (q, served) = (q.clone(), served.clone());
        tokio::spawn(async move {
            loop {
                let t = q.turn(key(), &who, start + LONG, 100, bound).await.unwrap();
                served
                    .lock()
                    .unwrap()
                    .push((who.label, (Instant::now() - start).as_millis()));
                tokio::time::sleep(Duration::from_millis(100)).await;
                drop(t);
                if !repeat || Instant::now() - start > Duration::from_millis(4500) {
                    return;
                }
            }
        })
    };
    let mut tasks: Vec<_> = (0..3)
        .map(|_| spawn(caller("batch", Priority::Batch, 1), false))
        .collect();
    settle().await;
    tasks.extend((0..3).map(|_| spawn(caller("search", Priority::Interactive, 1), true)));
    settle().await;
    drop(holder);
    for t in tasks {
        t.await.unwrap();
    }
    let s = served.lock().unwrap().clone();
    let batch: Vec<u128> = s
        .iter()
        .filter(|(l, _)| *l == "batch")
        .map(|(_, t)| *t)
        .collect();
    // The first once it has waited the bound; then one per bound, not all three at once.
    assert_eq!(batch, [1000, 2000, 3000], "{s:?}");
    let search = s.iter().filter(|(l, _)| *l == "search").count();
    assert!(search >= 40, "{search}");
}
