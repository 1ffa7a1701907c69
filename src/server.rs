//! Assembles the gRPC server: the services over one shared [`Gateway`], bound to a listener, with a shutdown
//! signal. `main.rs` and the tests both start the gateway through [`start`].

use crate::api::{BackupApi, Gateway, ListApi, UpstreamService, VectorApi};
use crate::config::Settings;
use crate::pb::gateway::backup_service_server::BackupServiceServer;
use crate::pb::gateway::list_service_server::ListServiceServer;
use crate::pb::pinecone::vector_service_server::VectorServiceServer;
use crate::stack::{self, limit::Limiter};
use crate::upstream::Upstream;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

/// Pinecone's 7.x/8.x clients allow 128 MiB messages; a 1,000-vector upsert of 20,000 dimensions is ~80 MB.
const MAX_MESSAGE_BYTES: usize = 128 * 1024 * 1024;

/// A running gateway.
pub struct RunningGateway {
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl RunningGateway {
    /// Stops accepting calls and waits for the server to end.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }

    /// Waits until the server ends by itself (it does not, unless it fails).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await??;
        Ok(())
    }
}

/// The tower stack over the REST client.
pub fn upstream_stack(settings: &Settings) -> anyhow::Result<UpstreamService> {
    let client = Upstream::new(settings.upstream.clone())?;
    let limiter = Limiter::new(settings.limits.clone());
    Ok(stack::build(
        client,
        limiter,
        settings.retry.clone(),
        settings.batching.clone(),
    ))
}

/// Binds `settings.listen` and serves.
pub async fn start(settings: &Settings) -> anyhow::Result<RunningGateway> {
    let listener = TcpListener::bind(settings.listen).await?;
    let addr = listener.local_addr()?;
    let gw = Gateway::new(
        upstream_stack(settings)?,
        settings.default_index.clone(),
        settings.default_timeout,
        settings.max_concurrent_calls,
    );
    let vector = VectorServiceServer::new(VectorApi::new(gw.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let backup = BackupServiceServer::new(BackupApi::new(gw.clone()));
    let list = ListServiceServer::new(ListApi::new(gw));
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tonic::transport::Server::builder()
        .add_service(vector)
        .add_service(backup)
        .add_service(list)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
            let _ = stopped.await;
        });
    let task = tokio::spawn(server);
    Ok(RunningGateway { addr, stop, task })
}
