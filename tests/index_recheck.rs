//! What the gateway caches with an index's host (the host, the dimension) is looked up again when Pinecone says it
//! may be stale: after Pinecone's own dimension error, and after a 404, the next call describes the index again (at
//! most once a second per index). Served by a tiny Pinecone of the test's own in front of the real binary, whose index
//! was recreated with dimension 3 at the same host while the gateway still knew it as dimension 4.
mod common;
use pinecone_gateway::pb::pinecone as p;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Tiny {
    addr: String,
    describes: usize,
    /// The dimension describe index reports.
    dimension: u32,
}

async fn tiny(state: Arc<Mutex<Tiny>>, req: axum::extract::Request) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = req.uri().path().to_string();
    let mut s = state.lock().unwrap();
    let json = |status: u16, body: String| {
        let mut r = (http::StatusCode::from_u16(status).unwrap(), body).into_response();
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        r
    };
    match path.as_str() {
        "/indexes/docs" => {
            s.describes += 1;
            json(
                200,
                format!(
                    r#"{{"name":"docs","host":"{}","dimension":{},"metric":"cosine","spec":{{"serverless":{{"cloud":"aws","region":"us-east-1"}}}},"status":{{"ready":true,"state":"Ready"}},"vector_type":"dense"}}"#,
                    s.addr, s.dimension
                ),
            )
        }
        // The index was recreated with dimension 3: 4 values are Pinecone's dimension error.
        "/vectors/upsert" => json(
            400,
            r#"{"code":3,"message":"Vector dimension 4 does not match the dimension of the index 3","details":[]}"#
                .into(),
        ),
        "/vectors/fetch" => json(
            404,
            r#"{"code":5,"message":"Namespace not found","details":[]}"#.into(),
        ),
        _ => json(599, format!("unexpected {path}")),
    }
}

fn upsert4() -> tonic::Request<p::UpsertRequest> {
    let mut r = tonic::Request::new(p::UpsertRequest {
        vectors: vec![p::Vector {
            id: "a".into(),
            values: vec![1.0, 0.0, 0.0, 0.0],
            ..Default::default()
        }],
        namespace: "ns".into(),
    });
    r.metadata_mut()
        .insert("pinecone-index", "docs".parse().unwrap());
    r
}

fn fetch() -> tonic::Request<p::FetchRequest> {
    let mut r = tonic::Request::new(p::FetchRequest {
        ids: vec!["a".into()],
        namespace: "ns".into(),
    });
    r.metadata_mut()
        .insert("pinecone-index", "docs".parse().unwrap());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinecones_dimension_error_and_404_make_the_next_call_describe_the_index_again() {
    let state = Arc::new(Mutex::new(Tiny {
        dimension: 4,
        ..Default::default()
    }));
    let app = axum::Router::new().fallback({
        let state = state.clone();
        move |req| tiny(state.clone(), req)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    state.lock().unwrap().addr = addr.clone();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = std::env::temp_dir().join(format!("pgw-recheck-{}.toml", std::process::id()));
    std::fs::write(&config, "[retry]\nmax_attempts = 1\n").unwrap();
    let gw = common::spawn_gateway(
        &[
            "--control-plane-url",
            &format!("http://{addr}"),
            "--config",
            config.to_str().unwrap(),
        ],
        &[("PINECONE_API_KEY", "recheck-key")],
    );
    let mut c =
        p::vector_service_client::VectorServiceClient::connect(format!("http://{}", gw.addr))
            .await
            .unwrap();
    let describes = || state.lock().unwrap().describes;
    // Looked up as dimension 4; Pinecone refuses the 4 values (the index is now dimension 3).
    let e = c.upsert(upsert4()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
    assert_eq!(describes(), 1);
    state.lock().unwrap().dimension = 3;
    // Rechecks wait a second after a lookup: this test waits it out.
    tokio::time::sleep(pinecone_gateway::upstream::hosts::Hosts::RECHECK_EVERY).await;
    let e = c.upsert(upsert4()).await.unwrap_err();
    assert!(
        e.message().contains("Pinecone answered 400"),
        "{}",
        e.message()
    );
    // The dimension error made the gateway forget what it knew: this call describes again, learns dimension 3 and
    // refuses the 4 values itself.
    let e = c.upsert(upsert4()).await.unwrap_err();
    assert_eq!(
        describes(),
        2,
        "described again after Pinecone's dimension error"
    );
    assert!(
        e.message().contains("dimension 3") && e.message().contains("nothing was sent"),
        "{}",
        e.message()
    );
    // A 404 does the same, a second after the last lookup.
    tokio::time::sleep(pinecone_gateway::upstream::hosts::Hosts::RECHECK_EVERY).await;
    let e = c.fetch(fetch()).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound, "{e:?}");
    let _ = c.fetch(fetch()).await;
    assert_eq!(describes(), 3, "described again after a 404");
    let _ = std::fs::remove_file(&config);
}
