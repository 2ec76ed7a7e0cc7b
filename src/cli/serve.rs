//! `iamd serve`, `iamd migrate` and `iamd bootstrap`: the service's own life.

use iamd::config::Settings;
use iamd::startup::{self, Application};

pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(&settings).await?;
    if let Some(done) = &app.bootstrap {
        announce(done);
    }
    let kafka = if settings.kafka.enabled() {
        Some(iamd::adapters::kafka::spawn(&settings.kafka, app.service.clone())?)
    } else {
        None
    };
    let registration = if settings.trustgraph.registers() {
        let counters = app.service.metrics().registrations().clone();
        Some(iamd::adapters::trustgraph::registration::spawn(&settings, counters)?)
    } else {
        None
    };
    tracing::info!(listen = %settings.http.listen, port = app.port, kafka = kafka.is_some(), "iamd serving HTTP");
    let http = app.handle();
    let service = app.service.clone();
    let mut server = actix_web::rt::spawn(app.run_until_stopped());
    let ended = tokio::select! {
        _ = startup::shutdown_signal() => None,
        ended = &mut server => Some(ended),
    };
    // HTTP and Kafka drain side by side; the actors they need live until both are done,
    // because the actix System ends only when this function returns.
    let kafka = actix_web::rt::task::spawn_blocking(move || kafka.map(|k| k.stop()));
    match ended {
        None => {
            tracing::info!("shutting down: finishing in-flight requests");
            http.stop(true).await;
            let _ = server.await;
        }
        Some(ended) => tracing::warn!(?ended, "the HTTP server stopped by itself"),
    }
    kafka.await?;
    if let Some(registration) = registration {
        actix_web::rt::task::spawn_blocking(move || registration.stop()).await?;
    }
    // Best effort, bounded: what is still queued for the authentication audit.
    if !service.authentications().flush(std::time::Duration::from_secs(5)).await {
        tracing::warn!("authentication audit: records still queued at exit were not all written");
    }
    tracing::info!("iamd stopped");
    Ok(())
}

/// Prints a freshly created admin key once, on standard output, never into the log.
pub fn announce(done: &iamd::service::Bootstrapped) {
    if let Some(key) = &done.admin_api_key {
        println!("bootstrap: created workspace `default` and user `admin` ({})", done.admin_user_id);
        println!("bootstrap: admin API key (shown once, store it now): {}", key.expose());
    } else if done.applied {
        println!(
            "bootstrap: created workspace `default` and user `admin` with the configured bootstrap.token"
        );
    }
}

pub async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let pool = iamd::db::connect(settings.database.url.expose(), settings.database.pool_size).await?;
    let applied = iamd::db::migrate(&pool).await?;
    let latest = iamd::db::MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0);
    println!("migrations applied: {applied} (schema now at {latest})");
    Ok(())
}

pub async fn bootstrap(settings: Settings) -> anyhow::Result<()> {
    let service = startup::build_service(&settings).await?;
    service.ensure_signing_key().await.map_err(|e| anyhow::anyhow!("signing key: {e}"))?;
    let token = if settings.bootstrap.token.is_set() {
        Some(startup::bootstrap_token(settings.bootstrap.token.expose())?)
    } else {
        None
    };
    let done = service.bootstrap_on_start(token).await.map_err(|e| anyhow::anyhow!("bootstrap: {e}"))?;
    if !done.applied {
        println!("bootstrap: already bootstrapped; nothing changed");
    }
    announce(&done);
    Ok(())
}
