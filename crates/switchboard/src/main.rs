//! The `switchboard` binary: read the configuration, serve, stop on Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::serve::ListenerExt;
use clap::Parser;
use switchboard::app;
use switchboard::config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    init_logging(config.log_format);

    let app = match app::build(&config).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    if config.cors_allows_any() {
        tracing::warn!(
            "CORS allows any origin; set --cors-origins (CORS_ORIGINS) to restrict it in production"
        );
    } else {
        tracing::info!(origins = ?config.cors_origins, "CORS allows only the configured origins");
    }

    let addr = SocketAddr::new(config.host, config.port);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(%addr, "cannot listen: {e}");
            return ExitCode::from(1);
        }
    };
    let local = listener.local_addr().unwrap_or(addr);
    tracing::info!(
        addr = %local,
        node = %app.state.signaling.node_id,
        version = env!("CARGO_PKG_VERSION"),
        "switchboard listening"
    );

    // Signaling is many small writes (a description, then candidates): without TCP_NODELAY,
    // Nagle's algorithm holds each write behind the peer's delayed ACK, up to 40 ms.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
    });
    let app = std::sync::Arc::new(app);
    let closing = app.clone();
    // The peer address goes into each request's extensions, for the `connected` log line.
    let service = app
        .router
        .clone()
        .into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, service)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            // Close the sockets first: long-polling requests would otherwise hold the
            // graceful shutdown open for up to a ping interval.
            closing.shutdown().await;
        })
        .await;
    if let Err(e) = served {
        tracing::error!("server error: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
