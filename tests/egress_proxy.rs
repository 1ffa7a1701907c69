//! Behind an egress proxy, as the README says: the real binary, given `HTTPS_PROXY` (with `user:password@`), reaches an
//! `https://` Pinecone (the emulator serving TLS from a CA of the test's own) through `CONNECT` tunnels, with the
//! credentials as `Proxy-Authorization`, TLS end to end (the proxy never sees the API key); with `NO_PROXY` naming
//! the host, it goes direct and the proxy sees nothing.
mod common;
use common::pki::{TestCa, temp_dir};
use common::{INDEX, KEY, spawn_gateway};
use pinecone_gateway::emulator::{Emulator, EmulatorOptions, EmulatorTls};
use pinecone_gateway::pb::pinecone as p;
use pinecone_gateway::pb::pinecone::vector_service_client::VectorServiceClient;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the proxy saw: each tunnel's target and `Proxy-Authorization`, and every byte it relayed to the targets.
#[derive(Default)]
struct Seen {
    tunnels: Vec<(String, Option<String>)>,
    relayed: Vec<u8>,
}

/// A CONNECT proxy on a free port; returns its address.
async fn connect_proxy(seen: Arc<Mutex<Seen>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let target = head
                    .strip_prefix("CONNECT ")
                    .and_then(|r| r.split_whitespace().next())
                    .unwrap_or_default()
                    .to_string();
                let auth = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Proxy-Authorization: "))
                    .or_else(|| {
                        head.lines()
                            .find_map(|l| l.strip_prefix("proxy-authorization: "))
                    })
                    .map(str::to_string);
                seen.lock().unwrap().tunnels.push((target.clone(), auth));
                let Ok(upstream) = tokio::net::TcpStream::connect(&target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                if client
                    .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                let (mut cr, mut cw) = client.into_split();
                let (mut ur, mut uw) = upstream.into_split();
                let up = tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        seen.lock().unwrap().relayed.extend_from_slice(&buf[..n]);
                        if uw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                let _ = tokio::io::copy(&mut ur, &mut cw).await;
                up.abort();
            });
        }
    });
    addr
}

async fn fetch_through(gw: &common::GatewayProcess) {
    let mut c = VectorServiceClient::connect(format!("http://{}", gw.addr))
        .await
        .unwrap();
    c.upsert(common::req(p::UpsertRequest {
        vectors: vec![p::Vector {
            id: "a".into(),
            values: vec![1.0, 2.0],
            ..Default::default()
        }],
        namespace: "ns".into(),
    }))
    .await
    .unwrap();
    let f = c
        .fetch(common::req(p::FetchRequest {
            ids: vec!["a".into()],
            namespace: "ns".into(),
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(f.vectors.contains_key("a"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_pinecone_is_reached_through_the_proxy_with_tls_end_to_end() {
    let ca = TestCa::new();
    let (cert_pem, key_pem) = ca.issue(&["127.0.0.1", "localhost"]);
    let emulator = Emulator::start(
        "127.0.0.1:0".parse().unwrap(),
        EmulatorOptions {
            api_key: Some(KEY.into()),
            tls: Some(EmulatorTls {
                cert_pem,
                key_pem,
                alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let index_host = emulator.create_index(INDEX, 2, "cosine").await.unwrap();
    let control = emulator.addr().to_string();
    let dir = temp_dir("egress-proxy");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &ca.pem).unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let proxy = connect_proxy(seen.clone()).await;
    let proxy_url = format!("http://scott:tiger@{proxy}");
    let args = [
        "--control-plane-url",
        &emulator.url(),
        "--default-index",
        INDEX,
    ];
    let gw = spawn_gateway(
        &args,
        &[
            ("PINECONE_API_KEY", KEY),
            ("SSL_CERT_FILE", ca_file.to_str().unwrap()),
            ("HTTPS_PROXY", &proxy_url),
            ("NO_PROXY", ""),
        ],
    );
    fetch_through(&gw).await;
    {
        let seen = seen.lock().unwrap();
        let targets: Vec<&str> = seen.tunnels.iter().map(|(t, _)| t.as_str()).collect();
        assert!(targets.contains(&control.as_str()), "{targets:?}");
        assert!(targets.contains(&index_host.as_str()), "{targets:?}");
        // "scott:tiger" in base64.
        for (_, auth) in &seen.tunnels {
            assert_eq!(auth.as_deref(), Some("Basic c2NvdHQ6dGlnZXI="), "{auth:?}");
        }
        assert!(seen.relayed.len() > 100, "nothing relayed");
        let key = KEY.as_bytes();
        assert!(
            !seen.relayed.windows(key.len()).any(|w| w == key),
            "the proxy saw the API key: TLS did not go end to end"
        );
    }
    drop(gw);

    // NO_PROXY naming the host: straight to Pinecone, the proxy sees no new tunnel.
    let tunnels = seen.lock().unwrap().tunnels.len();
    let direct = spawn_gateway(
        &args,
        &[
            ("PINECONE_API_KEY", KEY),
            ("SSL_CERT_FILE", ca_file.to_str().unwrap()),
            ("HTTPS_PROXY", &proxy_url),
            ("NO_PROXY", "127.0.0.1"),
        ],
    );
    fetch_through(&direct).await;
    assert_eq!(seen.lock().unwrap().tunnels.len(), tunnels);
    let _ = std::fs::remove_dir_all(&dir);
}
