//! The `switchboard` binary: read the configuration, serve, drain on SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use switchboard::app;
use switchboard::config::{Config, LogFormat};
use switchboard::connections::{ConnectionLimits, Deadlines, Peer, TrackedListener};
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

    let limits = ConnectionLimits {
        outgoing_budget: config.max_outgoing_bytes as usize,
        deadlines: Deadlines {
            handshake: config.handshake_timeout(),
            idle: config.idle_timeout(),
        },
    };
    let listener = TrackedListener::new(listener, limits);
    let app = std::sync::Arc::new(app);
    tokio::spawn(count_signals(app.clone()));
    let draining = app.clone();
    let service = app
        .router
        .clone()
        .into_make_service_with_connect_info::<Peer>();
    let served = axum::serve(listener, service)
        .with_graceful_shutdown(async move { draining.drain().await })
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

/// The first SIGTERM or SIGINT starts the drain (unless a drain already runs); the second
/// exits at once, for an operator who cannot wait.
async fn count_signals(app: std::sync::Arc<app::App>) {
    signal().await;
    if app.state.drain.begin() {
        tracing::info!("signal received: draining (a second signal exits at once)");
    } else {
        tracing::info!("signal received while draining (a second signal exits at once)");
    }
    signal().await;
    tracing::warn!("second signal: exiting without finishing the drain");
    std::process::exit(1);
}

/// Resolves on the next Ctrl-C (SIGINT) or SIGTERM.
async fn signal() {
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
}
