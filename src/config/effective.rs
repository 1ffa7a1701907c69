//! The effective configuration as TOML, secrets masked: what `pinecone-gateway config check FILE` prints. It loads
//! back as a configuration: each secret is printed as a comment, never as a value.

use super::Settings;
use crate::stack::limit::rates::{ClassRates, OpClass};
use toml::{Table, Value};

fn ms(d: std::time::Duration) -> Value {
    Value::Integer(d.as_millis() as i64)
}

fn int(n: usize) -> Value {
    Value::Integer(n as i64)
}

fn rates_table(r: &ClassRates) -> Table {
    let mut t = Table::new();
    let mut put = |k: &str, v: Option<u64>| {
        if let Some(v) = v.filter(|v| *v > 0) {
            t.insert(k.into(), Value::Integer(v as i64));
        }
    };
    put("namespace_requests_per_second", r.namespace_requests);
    put("index_requests_per_second", r.index_requests);
    put("namespace_records_per_second", r.namespace_records);
    put("index_records_per_second", r.index_records);
    put("namespace_bytes_per_second", r.namespace_bytes);
    put("index_read_units_per_second", r.index_read_units);
    t
}

pub fn render(s: &Settings) -> String {
    let mut root = Table::new();
    let mut server = Table::new();
    server.insert("listen".into(), s.server.listen.to_string().into());
    if let Some(rest) = s.server.rest_listen {
        server.insert("rest_listen".into(), rest.to_string().into());
    }
    server.insert("default_timeout_ms".into(), ms(s.server.default_timeout));
    server.insert(
        "max_concurrent_calls".into(),
        int(s.server.max_concurrent_calls),
    );
    server.insert("drain_grace_ms".into(), ms(s.server.drain_grace));
    server.insert(
        "upstream_unhealthy_after_ms".into(),
        ms(s.server.upstream_unhealthy_after),
    );
    server.insert("max_message_bytes".into(), int(s.server.max_message_bytes));
    server.insert(
        "max_buffered_request_bytes".into(),
        int(s.server.max_buffered_request_bytes),
    );
    if let Some(tls) = &s.server.tls {
        let mut t = Table::new();
        let path = |p: &std::path::Path| p.display().to_string().into();
        t.insert("cert_file".into(), path(&tls.cert_file));
        t.insert("key_file".into(), path(&tls.key_file));
        if let Some(ca) = &tls.client_ca_file {
            t.insert("client_ca_file".into(), path(ca));
        }
        server.insert("tls".into(), t.into());
    }
    root.insert("server".into(), server.into());

    let mut admin = Table::new();
    admin.insert("enabled".into(), s.server.admin_listen.is_some().into());
    if let Some(a) = s.server.admin_listen {
        admin.insert("listen".into(), a.to_string().into());
    }
    root.insert("admin".into(), admin.into());

    let mut up = Table::new();
    up.insert(
        "control_plane_url".into(),
        s.upstream.control_plane.to_string().into(),
    );
    up.insert("api_key".into(), MASKED.into());
    if let Some(d) = &s.default_index {
        up.insert("default_index".into(), d.clone().into());
    }
    up.insert("connect_timeout_ms".into(), ms(s.upstream.connect_timeout));
    up.insert("api_version".into(), s.upstream.api_version.into());
    up.insert("plaintext_http2".into(), s.upstream.plaintext_http2.into());
    root.insert("upstream".into(), up.into());

    let mut limits = Table::new();
    limits.insert("max_queue_wait_ms".into(), ms(s.limits.max_queue_wait));
    limits.insert("max_queue_len".into(), int(s.limits.max_queue_len));
    limits.insert(
        "expected_upstream_ms".into(),
        ms(s.limits.expected_upstream),
    );
    limits.insert("window_margin_ms".into(), ms(s.limits.window_margin));
    limits.insert("namespace_share_ms".into(), ms(s.limits.namespace_share));
    limits.insert("max_keys".into(), int(s.limits.max_keys));
    limits.insert(
        "max_batch_starvation_ms".into(),
        ms(s.limits.max_batch_starvation),
    );
    let mode = match (&s.limits.redis, s.limits.share) {
        (Some(_), _) => "redis",
        (None, 1) => "local",
        (None, _) => "static-share",
    };
    limits.insert("mode".into(), mode.into());
    limits.insert("replicas".into(), int(s.limits.share as usize));
    if let Some(r) = &s.limits.redis {
        let mut t = Table::new();
        t.insert("url".into(), MASKED.into());
        t.insert("timeout_ms".into(), ms(r.timeout));
        t.insert("reconnect_interval_ms".into(), ms(r.reconnect_interval));
        t.insert("spend_sync_ms".into(), ms(r.spend_sync));
        t.insert("heartbeat_ms".into(), ms(r.heartbeat));
        t.insert("grace_ms".into(), ms(r.grace));
        t.insert("fallback_decay_ms".into(), ms(r.fallback_decay));
        t.insert("close_delay_ms".into(), ms(r.close_delay));
        t.insert(
            "overload_ask_percent".into(),
            int(r.overload_ask_percent as usize),
        );
        t.insert(
            "batch_headroom_percent".into(),
            int(r.batch_headroom_percent as usize),
        );
        t.insert("overload_queue_ms".into(), ms(r.overload_queue));
        t.insert("answer_promise_max_ms".into(), ms(r.answer_promise_max));
        t.insert("key_prefix".into(), r.key_prefix.clone().into());
        t.insert("cluster".into(), r.cluster.into());
        limits.insert("redis".into(), t.into());
    }
    let mut rates = Table::new();
    for class in OpClass::ALL {
        rates.insert(
            class.name().into(),
            rates_table(&s.limits.rates.rates("", class)).into(),
        );
    }
    limits.insert("rates".into(), rates.into());
    root.insert("limits".into(), limits.into());

    let mut coalescing = Table::new();
    coalescing.insert("fetch".into(), s.coalescing.enabled.fetch.into());
    coalescing.insert("delete".into(), s.coalescing.enabled.delete.into());
    coalescing.insert(
        "burst_requests".into(),
        int(s.coalescing.burst_requests as usize),
    );
    root.insert("coalescing".into(), coalescing.into());

    let mut indexes = Table::new();
    let mut names: Vec<&String> = s
        .upstream
        .static_hosts
        .keys()
        .chain(s.limits.rates.per_index.keys())
        .chain(s.coalescing.per_index.keys())
        .collect();
    names.sort();
    names.dedup();
    for name in names {
        let mut t = Table::new();
        if let Some(h) = s.upstream.static_hosts.get(name) {
            t.insert("host".into(), h.clone().into());
        }
        if let Some(over) = s.limits.rates.per_index.get(name) {
            let mut l = Table::new();
            for class in OpClass::ALL.into_iter().filter(|c| over.contains_key(c)) {
                l.insert(
                    class.name().into(),
                    rates_table(&s.limits.rates.rates(name, class)).into(),
                );
            }
            t.insert("limits".into(), l.into());
        }
        if let Some(c) = s.coalescing.per_index.get(name) {
            let mut l = Table::new();
            l.insert("fetch".into(), c.fetch.into());
            l.insert("delete".into(), c.delete.into());
            t.insert("coalescing".into(), l.into());
        }
        indexes.insert(name.clone(), t.into());
    }
    if !indexes.is_empty() {
        root.insert("indexes".into(), indexes.into());
    }

    let mut auth = Table::new();
    auth.insert("enabled".into(), s.auth.enabled().into());
    let tokens: Vec<Value> = s
        .auth
        .tokens
        .iter()
        .map(|t| {
            let mut e = Table::new();
            e.insert("name".into(), t.name.clone().into());
            e.insert("token".into(), MASKED.into());
            if let Some(ix) = &t.indexes {
                let mut v: Vec<&String> = ix.iter().collect();
                v.sort();
                e.insert(
                    "indexes".into(),
                    Value::Array(v.into_iter().map(|n| n.clone().into()).collect()),
                );
            }
            e.into()
        })
        .collect();
    if !tokens.is_empty() {
        auth.insert("tokens".into(), Value::Array(tokens));
    }
    root.insert("auth".into(), auth.into());

    let quota = |t: &mut Table, q: &crate::api::caller::Quota| {
        t.insert(
            "requests_per_second".into(),
            Value::Integer(q.requests_per_second.into()),
        );
        t.insert("burst".into(), Value::Integer(q.burst.into()));
    };
    let mut callers = Table::new();
    for (name, c) in &s.callers {
        let mut t = Table::new();
        t.insert("priority".into(), c.priority.name().into());
        t.insert("max_priority".into(), c.max_priority.name().into());
        t.insert("weight".into(), Value::Integer(c.weight.into()));
        if let Some(q) = &c.quota {
            quota(&mut t, q);
        }
        let mut classes = Table::new();
        for (class, q) in &c.class_quotas {
            let mut ct = Table::new();
            quota(&mut ct, q);
            classes.insert(class.name().into(), ct.into());
        }
        if !classes.is_empty() {
            t.insert("classes".into(), classes.into());
        }
        let b = &c.budget;
        for (key, budget) in [
            ("read_units_per_day", b.read_units_per_day),
            ("read_units_per_month", b.read_units_per_month),
            ("write_units_per_day", b.write_units_per_day),
            ("write_units_per_month", b.write_units_per_month),
        ] {
            if let Some(n) = budget {
                t.insert(
                    key.into(),
                    Value::Integer(i64::try_from(n).unwrap_or(i64::MAX)),
                );
            }
        }
        callers.insert(name.clone(), t.into());
    }
    root.insert("callers".into(), callers.into());

    let mut retry = Table::new();
    retry.insert(
        "max_attempts".into(),
        Value::Integer(s.retry.max_attempts.into()),
    );
    retry.insert("base_backoff_ms".into(), ms(s.retry.base_backoff));
    retry.insert("max_backoff_ms".into(), ms(s.retry.max_backoff));
    retry.insert(
        "budget_percent".into(),
        Value::Float(s.retry.budget_percent.into()),
    );
    retry.insert(
        "budget_min_per_second".into(),
        Value::Integer(s.retry.budget_min_per_second.into()),
    );
    retry.insert(
        "retry_unsafe_writes".into(),
        s.retry.retry_unsafe_writes.into(),
    );
    root.insert("retry".into(), retry.into());

    let mut batching = Table::new();
    batching.insert("max_ids".into(), int(s.batching.caps.max_ids));
    batching.insert(
        "fetch_url_budget_bytes".into(),
        int(s.batching.caps.fetch_url_budget_bytes),
    );
    batching.insert(
        "max_upsert_vectors".into(),
        int(s.batching.caps.max_upsert_vectors),
    );
    batching.insert(
        "max_upsert_bytes".into(),
        int(s.batching.caps.max_upsert_bytes),
    );
    batching.insert(
        "max_concurrent_batches".into(),
        int(s.batching.max_concurrent_batches),
    );
    root.insert("batching".into(), batching.into());

    let mut log = Table::new();
    log.insert(
        "format".into(),
        format!("{:?}", s.log_format).to_lowercase().into(),
    );
    log.insert("level".into(), s.log_level.clone().into());
    root.insert("log".into(), log.into());

    let c = &s.consistency;
    let mut consistency = Table::new();
    consistency.insert("max_wait_ms".into(), ms(c.max_wait));
    consistency.insert("remember_ms".into(), ms(c.remember));
    consistency.insert("max_remembered".into(), int(c.max_remembered.get()));
    consistency.insert("first_backoff_ms".into(), ms(c.first_backoff));
    consistency.insert("max_backoff_ms".into(), ms(c.max_backoff));
    root.insert("consistency".into(), consistency.into());

    if let Some(t) = &s.tracing {
        let mut tracing = Table::new();
        tracing.insert("otlp_endpoint".into(), t.otlp_endpoint.clone().into());
        tracing.insert("service_name".into(), t.service_name.clone().into());
        tracing.insert("sample_ratio".into(), t.sample_ratio.into());
        tracing.insert("queue_spans".into(), int(t.queue_spans));
        tracing.insert("export_batch_spans".into(), int(t.export_batch_spans));
        tracing.insert("export_interval_ms".into(), ms(t.export_interval));
        tracing.insert("export_timeout_ms".into(), ms(t.export_timeout));
        let attributes: Table = t
            .resource_attributes
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        tracing.insert("resource_attributes".into(), attributes.into());
        if let Some(ca) = &t.ca_file {
            tracing.insert("ca_file".into(), ca.display().to_string().into());
        }
        if !t.headers.0.is_empty() {
            let masked: Table = t
                .headers
                .0
                .keys()
                .map(|k| (k.clone(), Value::String(MASKED.into())))
                .collect();
            tracing.insert("headers".into(), masked.into());
        }
        root.insert("tracing".into(), tracing.into());
    }

    toml::to_string_pretty(&root)
        .map(|text| as_comments(&text))
        .unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"))
}

/// Stands for a secret in the rendered table; [`as_comments`] turns each line holding it into a comment.
const MASKED: &str = "__pinecone_gateway_secret_masked__";

/// Every `key = <secret>` line becomes a comment, so that the printout loads back as a configuration (without its
/// secrets, which come from the environment or their files) instead of taking the mask for the secret.
fn as_comments(text: &str) -> String {
    let quoted = format!("\"{MASKED}\"");
    text.lines()
        .map(|line| match line.split_once(" = ") {
            Some((key, value)) if value == quoted => {
                format!("# {key} = *** (masked: a secret is never printed; give it by its file or environment)")
            }
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}
