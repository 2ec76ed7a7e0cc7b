//! Builds the running service from [`Settings`]: the pool (migrated unless told otherwise),
//! the actor registry, the service, a signing key, the start-up bootstrap, and the HTTP
//! listener — wrapped in the request-id / access-log middleware and, when
//! `http.cors.allowed_origins` is set, CORS. Binding is separate from running so that tests
//! can ask for port 0 and learn the port, and `main` can print the bootstrap key before
//! serving.

use crate::actors::Registry;
use crate::adapters::http::{self, Gatekeeper, HttpState};
use crate::config::{CorsSettings, Settings};
use crate::crypto::{ApiKey, PasswordHasher, PasswordPolicy};
use crate::db;
use crate::projections::key_cache::{self, KeyCache};
use crate::service::{keys, Bootstrapped, Service, ServiceSettings};
use crate::store::EventStore;
use actix_cors::Cors;
use actix_web::{middleware, web, App, HttpServer};
use anyhow::{bail, Context as _};
use base64::Engine;
use std::net::TcpListener;

/// A bound, not yet running server.
pub struct Application {
    pub port: u16,
    pub service: Service,
    /// What the start-up bootstrap did, when it ran.
    pub bootstrap: Option<Bootstrapped>,
    server: actix_web::dev::Server,
    /// ma1sd's identity store, on its own listener, and its port (`ma1sd.http_address`).
    ma1sd: Option<(actix_web::dev::Server, u16)>,
}

impl Application {
    /// Connects, migrates, bootstraps and binds. Must run inside an actix `System`.
    pub async fn build(settings: &Settings) -> anyhow::Result<Application> {
        let service = build_service(settings).await?;
        service
            .ensure_signing_key()
            .await
            .map_err(|e| anyhow::anyhow!("creating the first signing key failed: {e}"))?;
        let bootstrap = start_up_bootstrap(settings, &service).await?;
        let numbered = service
            .number_users()
            .await
            .map_err(|e| anyhow::anyhow!("giving users their integer ids failed: {e}"))?;
        if numbered > 0 {
            tracing::info!(numbered, "users created before integer ids got theirs");
        }
        if settings.compat.root_password.is_set() {
            let password = settings.compat.root_password.expose().to_owned();
            let workspace = &settings.compat.workspace;
            let created = service
                .ensure_root(workspace, password)
                .await
                .map_err(|e| anyhow::anyhow!("creating the root user (compat.root_password) failed: {e}"))?;
            if created {
                tracing::info!(%workspace, "root user created (compat.root_password)");
            }
        }
        if settings.cache.api_keys > 0 {
            let mut config = db::parse_url(settings.database.url.expose())?;
            config.application_name("iamd key cache");
            actix_web::rt::spawn(key_cache::listen(service.key_cache().clone(), config));
        }

        let listener = TcpListener::bind(&settings.http.listen).with_context(|| {
            format!("cannot listen on {} (http.listen / IAMD_HTTP_LISTEN)", settings.http.listen)
        })?;
        let port = listener.local_addr()?.port();
        let state = web::Data::new(HttpState {
            service: service.clone(),
            gatekeeper: Gatekeeper::new(&settings.http.gateway_secret),
            max_body_bytes: settings.http.max_body_bytes,
            compat_workspace: settings.compat.workspace.clone(),
        });
        let cors_settings = settings.http.cors.clone();
        let server = HttpServer::new(move || {
            // The last `wrap` is outermost: preflights answered by CORS get an id and a log line.
            App::new()
                .app_data(state.clone())
                .wrap(middleware::Condition::new(cors_settings.enabled(), cors(&cors_settings)))
                .wrap(middleware::from_fn(http::request_id::middleware))
                .configure(http::routes)
        })
        .workers(threads())
        // Signals are the caller's (see `shutdown_signal`): actix-server's own handling would
        // stop the whole actix System, and with it the actors, while the Kafka adapter drains.
        .disable_signals()
        .listen(listener)?
        .run();
        let ma1sd = if settings.ma1sd.http_address.is_empty() {
            None
        } else {
            Some(crate::adapters::ma1sd::server(settings, service.clone())?)
        };
        Ok(Application { port, service, bootstrap, server, ma1sd })
    }

    /// What stops the server: `handle().stop(true)` lets in-flight requests finish first.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// The port of ma1sd's identity store, when it is on.
    pub fn ma1sd_port(&self) -> Option<u16> {
        self.ma1sd.as_ref().map(|(_, port)| *port)
    }

    /// Serves until stopped through [`Application::handle`] (ma1sd's store, when on, stops
    /// with it).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Some((ma1sd, _)) = self.ma1sd else { return self.server.await };
        let handle = ma1sd.handle();
        let store = actix_web::rt::spawn(ma1sd);
        let served = self.server.await;
        handle.stop(true).await;
        let _ = store.await;
        served
    }

    /// Serves HTTP, and Kafka and the TrustGraph registration when configured, until
    /// `shutdown` resolves (`iamd serve`: SIGTERM or SIGINT; the tests: when dropped); then
    /// drains: in-flight HTTP requests finish, the Kafka adapter replies to what it took and
    /// commits, and the authentication audit is flushed (bounded).
    pub async fn serve(
        self,
        settings: &Settings,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let kafka = if settings.kafka.enabled() {
            Some(crate::adapters::kafka::spawn(&settings.kafka, self.service.clone())?)
        } else {
            None
        };
        let registration = if settings.trustgraph.registers() {
            let counters = self.service.metrics().registrations().clone();
            Some(crate::adapters::trustgraph::registration::spawn(settings, counters)?)
        } else {
            None
        };
        let cleanup = (!settings.cleanup.interval.is_zero()).then(|| {
            let job = crate::service::cleanup::run(
                self.service.clone(),
                settings.cleanup.interval,
                settings.cleanup.max_age,
            );
            actix_web::rt::spawn(job)
        });
        if let Some(port) = self.ma1sd_port() {
            tracing::info!(listen = %settings.ma1sd.http_address, port, "ma1sd identity store serving");
        }
        tracing::info!(listen = %settings.http.listen, port = self.port, kafka = kafka.is_some(), "iamd serving HTTP");
        let http = self.handle();
        let service = self.service.clone();
        let mut server = actix_web::rt::spawn(self.run_until_stopped());
        let ended = tokio::select! {
            _ = shutdown => None,
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
        if let Some(cleanup) = cleanup {
            cleanup.abort();
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
}

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            }
            _ => std::future::pending::<()>().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// CORS for `http.cors.allowed_origins` (validated by the config): the listed origins with
/// credentials, or any origin without them when `*` is listed.
fn cors(settings: &CorsSettings) -> Cors {
    let cors = Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers(["Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id"])
        .expose_headers(["X-Request-Id", "X-Next-After"])
        .max_age(3600);
    if settings.any_origin() {
        return cors.allow_any_origin().send_wildcard();
    }
    settings
        .allowed_origins
        .iter()
        .fold(cors, |cors, origin| cors.allowed_origin(origin))
        .supports_credentials()
}

fn threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

/// The pool (migrated when `database.migrate_on_start`), the actors and the service, without
/// a listener: what `iamd bootstrap` and the tests need. Must run inside an actix `System`.
pub async fn build_service(settings: &Settings) -> anyhow::Result<Service> {
    let pool = db::connect(settings.database.url.expose(), settings.database.pool_size).await?;
    if settings.database.migrate_on_start {
        let applied = crate::store::migrations::migrate(&pool).await?;
        if applied > 0 {
            tracing::info!(applied, "database migrations applied");
        }
    } else if !crate::store::migrations::is_migrated(&pool).await? {
        bail!("the database schema is not up to date: run `iamd migrate` (or set database.migrate_on_start: true)");
    }
    let kek = settings.kek()?;
    let digest_key = keys::start(&pool, kek.as_ref()).await?;
    let digested = crate::authn_audit::digest_unknown_usernames(&pool, &digest_key).await?;
    if digested > 0 {
        tracing::info!(digested, "authentication audit: names that found no user replaced by their digest");
    }
    let cache = KeyCache::new(settings.cache.api_keys, settings.cache.api_keys_ttl);
    let store = EventStore::with_key_cache(pool, cache).sealing_with(kek.clone());
    let registry = Registry::new(store.clone(), settings.actors.idle_timeout, threads());
    let a = &settings.argon2;
    let hasher = PasswordHasher::new(a.memory_kib, a.iterations, a.parallelism)?;
    let service_settings = ServiceSettings {
        jwt_issuer: settings.jwt.issuer.clone(),
        jwt_ttl: chrono::Duration::from_std(settings.jwt.ttl).context("jwt.ttl is too large")?,
        renewal_validity: match settings.accounts.renewal_validity {
            Some(v) => Some(chrono::Duration::from_std(v).context("accounts.renewal_validity is too large")?),
            None => None,
        },
        email_validity: chrono::Duration::from_std(settings.jwt.email_validity)
            .context("jwt.email_validity is too large")?,
        accounts: account_rules(&settings.accounts)?,
        mailer: crate::mail::Mailer::new(&settings.smtp, &settings.mail)?,
        signing_grace: chrono::Duration::from_std(settings.signing.grace_period)
            .context("signing.grace_period is too large")?,
        policy: PasswordPolicy { min_length: settings.password.min_length },
        authentication_audit: settings.audit.authentications.clone(),
        kek,
        legacy_jwt_key: settings.legacy_jwt_key()?,
    };
    Ok(Service::new(store, registry, hasher, service_settings, digest_key))
}

/// `accounts.*` as the service applies them.
fn account_rules(a: &crate::config::AccountsSettings) -> anyhow::Result<crate::service::AccountRules> {
    let email_pattern = match a.email_pattern.as_str() {
        "" => None,
        // Addresses compare case-insensitively.
        p => Some(
            regex::RegexBuilder::new(p).case_insensitive(true).build().context("accounts.email_pattern")?,
        ),
    };
    Ok(crate::service::AccountRules {
        self_registration: a.self_registration,
        registration_workspace: a.registration_workspace.clone(),
        email_pattern,
        reserved_usernames: a.reserved_usernames.clone(),
    })
}

/// With `bootstrap.token`, bootstraps with that key (no secret in any reply); else, with
/// `bootstrap.on_start`, bootstraps with a fresh key the caller prints once.
async fn start_up_bootstrap(settings: &Settings, service: &Service) -> anyhow::Result<Option<Bootstrapped>> {
    let token = if settings.bootstrap.token.is_set() {
        Some(bootstrap_token(settings.bootstrap.token.expose())?)
    } else if settings.bootstrap.on_start {
        None
    } else {
        return Ok(None);
    };
    let done = service
        .bootstrap_on_start(token)
        .await
        .map_err(|e| anyhow::anyhow!("start-up bootstrap failed: {e}"))?;
    Ok(Some(done))
}

/// An operator-chosen bootstrap key must look like one iamd would make: `tg_` and at least
/// 22 base64url characters (128 bits).
pub fn bootstrap_token(raw: &str) -> anyhow::Result<ApiKey> {
    let body = raw.strip_prefix(crate::crypto::api_key::API_KEY_PREFIX).unwrap_or("");
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body).unwrap_or_default();
    if body.len() < 22 || decoded.len() * 8 < 128 || raw.len() > crate::crypto::api_key::MAX_API_KEY_LEN {
        bail!("bootstrap.token must be `tg_` followed by at least 22 base64url characters");
    }
    Ok(ApiKey::from_plaintext(raw.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_tokens_need_the_prefix_and_128_bits() {
        assert!(bootstrap_token("tg_AAAAAAAAAAAAAAAAAAAAAA").is_ok());
        assert!(bootstrap_token(ApiKey::generate().expose()).is_ok());
        assert!(bootstrap_token("tg_short").is_err());
        assert!(bootstrap_token("xx_AAAAAAAAAAAAAAAAAAAAAA").is_err());
        assert!(bootstrap_token("tg_!!!!!!!!!!!!!!!!!!!!!!!!").is_err());
    }

    /// A preflight from `origin` through `cors(origins)`: the response's CORS headers.
    async fn preflight(origins: &[&str], origin: &str) -> (Option<String>, Option<String>) {
        use actix_web::test::{call_service, init_service, TestRequest};
        let settings = CorsSettings { allowed_origins: origins.iter().map(|o| o.to_string()).collect() };
        let app =
            init_service(App::new().wrap(cors(&settings)).route("/", web::get().to(|| async { "" }))).await;
        let req = TestRequest::default()
            .method(actix_web::http::Method::OPTIONS)
            .insert_header(("Origin", origin))
            .insert_header(("Access-Control-Request-Method", "GET"))
            .to_request();
        let res = call_service(&app, req).await;
        let get = |name: &str| res.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        (get("access-control-allow-origin"), get("access-control-allow-credentials"))
    }

    #[actix_web::test]
    async fn listed_origins_get_credentials_and_a_star_gets_any_origin_without() {
        let listed = ["https://app.example", "http://localhost:3000"];
        assert_eq!(
            preflight(&listed, "http://localhost:3000").await,
            (Some("http://localhost:3000".into()), Some("true".into()))
        );
        assert_eq!(preflight(&listed, "https://evil.example").await.0, None);
        assert_eq!(preflight(&["*"], "https://evil.example").await, (Some("*".into()), None));
    }
}

/// The log filter for `log_level`. actix-http logs every request its parser refuses (a bad
/// header, a malformed request line) at ERROR: any client could write ERROR lines. Those are
/// the client's mistakes, so they show only when debug logging is asked for.
pub fn log_filter(log_level: &str) -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::filter::LevelFilter;
    let filter = tracing_subscriber::EnvFilter::try_new(log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if filter.max_level_hint().is_some_and(|max| max >= LevelFilter::DEBUG) {
        return filter;
    }
    match "actix_http::h1::dispatcher=off".parse() {
        Ok(quiet) => filter.add_directive(quiet),
        Err(_) => filter,
    }
}

#[cfg(test)]
mod log_filter_tests {
    use super::log_filter;

    #[test]
    fn client_parse_errors_are_quiet_unless_debug_is_asked_for() {
        assert!(log_filter("info").to_string().contains("actix_http::h1::dispatcher=off"));
        assert!(log_filter("warn,iamd=info").to_string().contains("actix_http::h1::dispatcher=off"));
        assert!(!log_filter("debug").to_string().contains("actix_http::h1::dispatcher=off"));
        assert!(!log_filter("info,actix_http=debug").to_string().contains("=off"));
    }
}
