//! `iamd serve`, `iamd migrate` and `iamd bootstrap`: the service's own life.

use iamd::config::Settings;
use iamd::startup::{self, Application};

pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    let app = Application::build(&settings).await?;
    if let Some(done) = &app.bootstrap {
        announce(done);
    }
    app.serve(&settings, startup::shutdown_signal()).await
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
    let applied = iamd::store::migrations::migrate(&pool).await?;
    let latest = iamd::store::migrations::MIGRATIONS.iter().map(|m| m.0).max().unwrap_or(0);
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
