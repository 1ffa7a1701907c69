//! The example configuration in deploy/ is accepted, and every value in it is what it says.
use pinecone_gateway::config::{FileConfig, LogFormat, Overrides};

#[test]
fn example_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/gateway.example.toml");
    let settings = FileConfig::read(std::path::Path::new(path))
        .unwrap()
        .settings(Overrides {
            api_key: Some("k".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(settings.server.listen.to_string(), "127.0.0.1:5081");
    assert_eq!(settings.default_index.as_deref(), Some("docs-example"));
    assert_eq!(settings.log_format, LogFormat::Json);
    assert!(settings.upstream.static_hosts.contains_key("docs-example"));
    use pinecone_gateway::stack::limit::rates::OpClass;
    let query = settings.limits.rates.rates("docs-example", OpClass::Query);
    assert_eq!(query.namespace_requests, Some(500));
    assert_eq!(
        settings
            .limits
            .rates
            .rates("other", OpClass::Query)
            .namespace_requests,
        Some(100)
    );
    assert_eq!(settings.retry.max_attempts, 4);
    use pinecone_gateway::call::Priority;
    let search = &settings.callers["search-service"];
    assert_eq!(
        (search.priority, search.max_priority, search.weight),
        (Priority::Interactive, Priority::Interactive, 1)
    );
    assert_eq!(
        search.quota.map(|q| (q.requests_per_second, q.burst)),
        Some((200, 400))
    );
    let backfill = &settings.callers["backfill"];
    assert_eq!(backfill.priority, Priority::Batch);
    assert_eq!(backfill.class_quotas[&OpClass::Fetch].burst, 20);
    assert!(
        settings.limits.fair_queuing,
        "naming callers turns fair queuing on"
    );
    assert_eq!(settings.batching.caps.fetch_url_budget_bytes, 8192);
}
