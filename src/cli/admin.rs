//! `iamd call`, `iamd bench`, `iamd signing-keys rewrap` and `iamd trustgraph sync`: an
//! operator's errands.

use crate::{BenchArgs, CallArgs};
use iamd::config::Settings;

pub async fn call(settings: Settings, args: Box<CallArgs>) -> anyhow::Result<()> {
    use iamd::adapters::kafka::client::{ClientOptions, KafkaClient};
    use iamd::protocol::IamRequest;
    let brokers = args.kafka.unwrap_or_else(|| settings.kafka.brokers.clone());
    if brokers.trim().is_empty() {
        anyhow::bail!("call: no brokers (pass --kafka HOST:PORT or set kafka.brokers)");
    }
    let mut request = match &args.request {
        Some(json) => {
            IamRequest::from_json(json.as_bytes()).map_err(|e| anyhow::anyhow!("--request: {}", e.message))?
        }
        None => IamRequest::default(),
    };
    request.operation = args.operation;
    for (field, value) in [
        (&mut request.workspace, args.workspace),
        (&mut request.user_id, args.user_id),
        (&mut request.username, args.username),
        (&mut request.password, args.password),
        (&mut request.new_password, args.new_password),
        (&mut request.api_key, args.api_key),
        (&mut request.key_id, args.key_id),
        (&mut request.actor, args.actor),
        (&mut request.request_id, args.request_id),
    ] {
        if let Some(v) = value {
            *field = v;
        }
    }
    let options = ClientOptions {
        request_topic: settings.kafka.request_topic.clone(),
        response_topic: settings.kafka.response_topic.clone(),
        partitioner: settings.kafka.partitioner.clone(),
        properties: settings.kafka.extra_properties()?,
        ..ClientOptions::new(&brokers)
    };
    let client = KafkaClient::connect(options, args.timeout).await?;
    if args.repeat > 1 {
        let figures = iamd::adapters::kafka::client::measure(
            &client,
            &request,
            args.repeat,
            args.in_flight,
            args.timeout,
        )
        .await;
        println!("{}", serde_json::to_string(&figures)?);
        return Ok(());
    }
    let reply = client.call(&request, args.timeout).await?;
    println!("{}", serde_json::to_string_pretty(&reply)?);
    if reply.error.is_some() {
        std::process::exit(1);
    }
    Ok(())
}

pub async fn bench(settings: Settings, args: BenchArgs) -> anyhow::Result<()> {
    let options = iamd::tools::bench::Options {
        admin_url: settings.database.url.expose().to_owned(),
        kafka: args.kafka.or_else(|| Some(settings.kafka.brokers.clone()).filter(|b| !b.trim().is_empty())),
        request_topic: settings.kafka.request_topic.clone(),
        response_topic: settings.kafka.response_topic.clone(),
        duration: args.duration,
        only: args.only,
        argon2: settings.argon2.clone(),
        rebuild_events: args.rebuild_events,
    };
    let report = iamd::tools::bench::run(&options).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(())
}

pub async fn rewrap(settings: Settings, old_kek_file: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let Some(new) = settings.kek()? else {
        anyhow::bail!(
            "signing-keys rewrap: set the new KEK first (signing.kek_file / IAMD_SIGNING_KEK_FILE)"
        );
    };
    let old = match old_kek_file {
        Some(path) => {
            use anyhow::Context as _;
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("signing-keys rewrap: reading {}", path.display()))?;
            Some(iamd::crypto::Kek::from_base64(&text).context("signing-keys rewrap: --old-kek-file")?)
        }
        None => None,
    };
    let pool = iamd::db::connect(settings.database.url.expose(), 2).await?;
    let done = iamd::service::keys::rewrap(&pool, &new, old.as_ref())
        .await
        .map_err(|e| anyhow::anyhow!("signing-keys rewrap: {e:#}; nothing was changed"))?;
    println!(
        "signing-keys rewrap: {} sealed, {} moved from the old KEK, {} already under KEK {}",
        done.sealed,
        done.rewrapped,
        done.unchanged,
        new.fingerprint()
    );
    Ok(())
}

pub async fn trustgraph_sync(settings: Settings) -> anyhow::Result<()> {
    if !settings.trustgraph.registers() {
        anyhow::bail!(
            "trustgraph sync: set trustgraph.config_request_topic and trustgraph.config_response_topic (and kafka.brokers)"
        );
    }
    let pool = iamd::db::connect(settings.database.url.expose(), 2).await?;
    let queries = iamd::service::Queries::new(pool);
    let (workspaces, _) = queries
        .workspaces(&iamd::service::page::Page::default())
        .await
        .map_err(|e| anyhow::anyhow!("trustgraph sync: reading the workspaces: {e}"))?;
    let enabled: Vec<String> = workspaces.into_iter().filter(|w| w.enabled).map(|w| w.id).collect();
    let n = iamd::adapters::trustgraph::sync(&settings, &enabled)
        .await
        .map_err(|e| anyhow::anyhow!("trustgraph sync: {e:#}"))?;
    println!("trustgraph sync: {n} enabled workspaces registered with the config service");
    Ok(())
}

/// `iamd import netsoc`: progress on standard error, the counts (and each conflict) on
/// standard output; conflicts fail the command once everything else is imported.
pub async fn import_netsoc(settings: Settings, from: &str, workspace: Option<String>) -> anyhow::Result<()> {
    let workspace = workspace.unwrap_or_else(|| settings.compat.workspace.clone());
    iamd::domain::rules::workspace_id(&workspace)
        .map_err(|e| anyhow::anyhow!("--workspace: {}", e.message))?;
    let service = iamd::startup::build_service(&settings).await?;
    let progress = |done: usize, total: usize| eprintln!("import: {done}/{total} Netsoc users read");
    let report = iamd::tools::netsoc_import::import(&service, from, &workspace, progress).await?;
    for (id, username, why) in &report.conflicts {
        println!("import: not imported: Netsoc user {id} ({username:?}): {why}");
    }
    println!("import into workspace {workspace:?}: {report}");
    if !report.conflicts.is_empty() {
        anyhow::bail!("import: {} Netsoc users could not be imported (listed above)", report.conflicts.len());
    }
    Ok(())
}
