//! What each caller spends: the read units of Pinecone's answers, charged to the callers a coalesced fetch served in
//! proportion to their IDs and added up over the parts of a split fetch; write units estimated by Pinecone's rule;
//! counted by caller, index and operation in `/spend` and in the metrics.
mod common;
use common::*;
use pinecone_gateway::pb::pinecone as p;
use serde_json::Value;

const CONFIG: &str = "[limits.rates.fetch]\nindex_requests_per_second = 1\n\
    [callers.a]\n[callers.b]\n[callers.c]\n";

fn from(caller: &str, msg: p::FetchRequest) -> tonic::Request<p::FetchRequest> {
    let mut r = req(msg);
    r.metadata_mut().insert("x-caller", caller.parse().unwrap());
    r
}

/// A one-vector upsert by `caller` (Pinecone's least charge: 5 write units).
fn small_upsert(caller: &str) -> tonic::Request<p::UpsertRequest> {
    let mut r = req(p::UpsertRequest {
        vectors: vec![p::Vector {
            id: "w".into(),
            values: vec![1.0, 0.0, 0.0, 0.0],
            ..Default::default()
        }],
        namespace: "ns".into(),
    });
    r.metadata_mut().insert("x-caller", caller.parse().unwrap());
    r
}

async fn spend(env: &Env) -> Value {
    spend_report(env.gateway.as_ref().unwrap().admin_addr.unwrap()).await
}

/// The units of `caller` on `operation` in a `/spend` report: (read today, write today, read this month).
fn row(report: &Value, caller: &str, operation: &str) -> (u64, u64, u64) {
    let r = report["spend"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["caller"] == caller && r["operation"] == operation && r["index"] == INDEX)
        .unwrap_or_else(|| panic!("no {caller} {operation} in {report}"));
    let n = |v: &Value| v.as_u64().unwrap();
    (
        n(&r["today"]["read_units"]),
        n(&r["today"]["write_units"]),
        n(&r["this_month"]["read_units"]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coalesced_fetch_charges_each_caller_its_share() {
    let env = Env::start_with(EnvOptions {
        config: Some(CONFIG.into()),
        ..Default::default()
    })
    .await;
    env.seed("ns", "s", 60).await;
    // The only turn of this second, so the three fetches below wait together and go out as one.
    env.vectors()
        .fetch(req(p::FetchRequest {
            ids: vec!["warm".into()],
            namespace: "ns".into(),
        }))
        .await
        .unwrap();
    let before = env.emulator.count(INDEX, "fetch");
    let ids = |from: usize, to: usize| (from..to).map(|i| format!("s-{i:04}")).collect::<Vec<_>>();
    let mut calls = Vec::new();
    for (caller, range) in [("a", (0, 10)), ("b", (10, 30)), ("c", (30, 60))] {
        let mut client = env.vectors();
        let msg = p::FetchRequest {
            ids: ids(range.0, range.1),
            namespace: "ns".into(),
        };
        calls.push(tokio::spawn(async move {
            client.fetch(from(caller, msg)).await.unwrap().into_inner()
        }));
    }
    let mut units = Vec::new();
    for c in calls {
        units.push(c.await.unwrap().usage.unwrap().read_units.unwrap());
    }
    assert_eq!(
        env.emulator.count(INDEX, "fetch"),
        before + 1,
        "one request for the three"
    );
    // 60 records: Pinecone's 6 read units (1 per 10 records), shared 10 : 20 : 30.
    assert_eq!(units, vec![1, 2, 3]);
    let report = spend(&env).await;
    assert_eq!(row(&report, "a", "Fetch"), (1, 0, 1));
    assert_eq!(row(&report, "b", "Fetch"), (2, 0, 2));
    assert_eq!(row(&report, "c", "Fetch"), (3, 0, 3));
    let text = scrape(env.gateway.as_ref().unwrap().admin_addr.unwrap()).await;
    assert_eq!(
        metric(
            &text,
            &format!(
                r#"pinecone_gateway_read_units_total{{caller="c",index="{INDEX}",operation="Fetch"}}"#
            )
        ),
        3.0,
        "{text}"
    );
}

#[tokio::test]
async fn a_split_fetch_charges_its_parts_and_writes_are_estimated() {
    let env = Env::start_with(EnvOptions {
        config: Some("[callers.a]\n".into()),
        ..Default::default()
    })
    .await;
    // 2,500 IDs: three requests (1,000 + 1,000 + 500), none found, each Pinecone's least charge of 1 read unit.
    let ids = (0..2500).map(|i| format!("m{i}")).collect();
    let f = env
        .vectors()
        .fetch(from(
            "a",
            p::FetchRequest {
                ids,
                namespace: "ns".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(env.emulator.count(INDEX, "fetch"), 3);
    assert_eq!(f.usage.unwrap().read_units, Some(3));
    env.vectors().upsert(small_upsert("a")).await.unwrap();
    // A caller that is not configured is counted as `other`.
    env.vectors()
        .fetch(from(
            "unconfigured",
            p::FetchRequest {
                ids: vec!["w".into()],
                namespace: "ns".into(),
            },
        ))
        .await
        .unwrap();
    let report = spend(&env).await;
    assert_eq!(row(&report, "a", "Fetch"), (3, 0, 3));
    assert_eq!(
        row(&report, "a", "Upsert"),
        (0, 5, 0),
        "a small upsert: Pinecone's least 5"
    );
    assert_eq!(row(&report, "other", "Fetch"), (1, 0, 1));
    assert!(report["day"].as_str().unwrap().len() == 10, "{report}");
}

/// A caller that has spent its budget is refused at once, naming the budget and when it renews, with that wait as
/// retry advice; nothing is sent. Reads are charged afterwards; a write is refused when its estimate would go past.
#[tokio::test]
async fn a_spent_budget_refuses_the_call_and_sends_nothing() {
    let env = Env::start_with(EnvOptions {
        config: Some("[callers.a]\nread_units_per_day = 2\nwrite_units_per_month = 9\n".into()),
        ..Default::default()
    })
    .await;
    let fetch = || {
        from(
            "a",
            p::FetchRequest {
                ids: vec!["x".into()],
                namespace: "ns".into(),
            },
        )
    };
    env.vectors().fetch(fetch()).await.unwrap();
    env.vectors().fetch(fetch()).await.unwrap();
    let refused = env.vectors().fetch(fetch()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(
        refused.message().contains("callers.a.read_units_per_day")
            && refused.message().contains("T00:00:00Z"),
        "{}",
        refused.message()
    );
    let wait = pushback_ms(&refused);
    assert!(
        wait > 0 && wait <= 86_400_000,
        "renews within a day: {wait} ms"
    );
    assert_eq!(env.emulator.count(INDEX, "fetch"), 2, "nothing sent");
    // Another caller is not held to a's budget.
    env.vectors()
        .fetch(from(
            "b",
            p::FetchRequest {
                ids: vec!["x".into()],
                namespace: "ns".into(),
            },
        ))
        .await
        .unwrap();
    let upsert = || small_upsert("a");
    env.vectors().upsert(upsert()).await.unwrap();
    let refused = env.vectors().upsert(upsert()).await.unwrap_err();
    assert!(
        refused
            .message()
            .contains("callers.a.write_units_per_month")
            && refused.message().contains("estimated at 5"),
        "{}",
        refused.message()
    );
    assert_eq!(env.emulator.count(INDEX, "upsert"), 1);
}

/// Through the REST door: a fetch's read units are charged to its caller (`x-caller` header), and a spent budget is
/// 429 with `Retry-After` and the budget named, nothing sent.
#[tokio::test]
async fn rest_calls_are_charged_and_held_to_budgets() {
    let env = Env::start_rest("[callers.a]\nread_units_per_day = 1\n").await;
    let url = format!(
        "http://{}/vectors/fetch?ids=x&namespace=ns",
        env.rest_addr()
    );
    let http = reqwest::Client::new();
    let first = http.get(&url).header("x-caller", "a").send().await.unwrap();
    assert_eq!(first.status(), 200);
    let refused = http.get(&url).header("x-caller", "a").send().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("callers.a.read_units_per_day")
    );
    assert_eq!(env.emulator.count(INDEX, "fetch"), 1, "nothing sent");
    assert_eq!(row(&spend(&env).await, "a", "Fetch"), (1, 0, 1));
}

/// A `ListAll` walk is charged page by page to its caller, and stops before the next page once the caller's budget
/// is spent (each page is a list call Pinecone charges 1 RU).
#[tokio::test]
async fn a_list_walk_charges_every_page_and_stops_at_the_budget() {
    use pinecone_gateway::pb::gateway as g;
    let env = Env::start_with(EnvOptions {
        config: Some("[callers.a]\nread_units_per_day = 2\n".into()),
        ..Default::default()
    })
    .await;
    env.seed("ns", "id", 50).await;
    let walk = |page_size| {
        let mut r = req(g::ListAllRequest {
            namespace: "ns".into(),
            prefix: None,
            page_size: Some(page_size),
        });
        r.metadata_mut().insert("x-caller", "a".parse().unwrap());
        r
    };
    // 50 IDs in pages of 10: the third page would go past the 2 RU a day; the walk ends there, nothing more sent.
    let mut stream = env.lists().list_all(walk(10)).await.unwrap().into_inner();
    let (mut pages, mut read_units) = (0, 0);
    let ended = loop {
        match stream.message().await {
            Ok(Some(page)) => {
                pages += 1;
                read_units += page.read_units.unwrap_or(0);
            }
            Ok(None) => panic!("the walk ended although the budget was spent"),
            Err(status) => break status,
        }
    };
    assert_eq!((pages, read_units), (2, 2));
    assert_eq!(ended.code(), tonic::Code::ResourceExhausted);
    assert!(
        ended.message().contains("callers.a.read_units_per_day"),
        "{}",
        ended.message()
    );
    assert_eq!(env.emulator.count(INDEX, "list"), 2);
    assert_eq!(row(&spend(&env).await, "a", "ListAll"), (2, 0, 2));
}
