//! `iamd audit verify|log|authentications|replay` and `iamd snapshots verify`: reading the log
//! and the authentication audit.

use iamd::config::Settings;

/// Progress goes to standard error every this many events.
pub const AUDIT_PROGRESS_EVERY: u64 = 100_000;

/// Prints one line: the count when every chain is intact (exit 0), else the first bad event
/// (exit 2). Never a payload: payloads hold password hashes.
pub async fn audit_verify(settings: Settings, workspace: Option<String>) -> anyhow::Result<()> {
    let pool = iamd::db::connect(settings.database.url.expose(), 1).await?;
    let mut next_progress = AUDIT_PROGRESS_EVERY;
    let report = iamd::audit::verify(&pool, workspace.as_deref(), |checked| {
        if checked >= next_progress {
            eprintln!("audit verify: {checked} events…");
            next_progress = (checked / AUDIT_PROGRESS_EVERY + 1) * AUDIT_PROGRESS_EVERY;
        }
    })
    .await?;
    match report.first_break {
        None => {
            let plural = |n: u64, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
            println!(
                "audit verify: {} in {}, every chain intact",
                plural(report.events, "event"),
                plural(report.streams, "stream")
            );
            Ok(())
        }
        Some(found) => {
            println!("audit verify: {found}");
            std::process::exit(2);
        }
    }
}

/// One line per snapshot; exit 2 when one is a problem (see `iamd::audit::snapshots`).
pub async fn snapshots_verify(settings: Settings, workspace: Option<String>) -> anyhow::Result<()> {
    let pool = iamd::db::connect(settings.database.url.expose(), 1).await?;
    if !iamd::store::migrations::is_migrated(&pool).await? {
        anyhow::bail!("snapshots: the database is not migrated; run `iamd migrate` first");
    }
    let checked = iamd::audit::snapshots::verify(&pool, workspace.as_deref()).await?;
    let problems = checked.iter().filter(|c| c.finding.is_problem()).count();
    for c in &checked {
        println!("snapshots verify: {c}");
    }
    println!("snapshots verify: {} snapshots checked, {problems} problems", checked.len());
    if problems > 0 {
        std::process::exit(2);
    }
    Ok(())
}

/// Prints the filtered history, one line per event, oldest first.
pub async fn audit_log(
    settings: Settings,
    workspace: Option<String>,
    user: Option<String>,
    since: Option<String>,
    until: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    let filter = iamd::audit::log::Filter {
        workspace,
        user,
        since: since.as_deref().map(|t| instant("audit log: --since", t)).transpose()?,
        until: until.as_deref().map(|t| instant("audit log: --until", t)).transpose()?,
    };
    let pool = iamd::db::connect(settings.database.url.expose(), 1).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let shown = iamd::audit::log::read(&pool, &filter, |entry| {
        let line = if json {
            iamd::audit::log::render_json(entry).to_string()
        } else {
            iamd::audit::log::render_text(entry)
        };
        writeln!(out, "{line}").map_err(|e| anyhow::anyhow!("audit log: writing: {e}"))
    })
    .await?;
    out.flush()?;
    if !json {
        eprintln!("audit log: {shown} event{}", if shown == 1 { "" } else { "s" });
    }
    Ok(())
}

/// Prints the authentication audit, oldest first, a page at a time.
pub async fn audit_authentications(
    settings: Settings,
    since: Option<String>,
    until: Option<String>,
    user: Option<String>,
    outcome: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    use iamd::authn_audit as audit;
    use std::io::Write as _;
    let filter = audit::Filter {
        user_id: user,
        outcome: outcome.as_deref().and_then(audit::Outcome::parse),
        since: since.as_deref().map(|t| instant("audit authentications: --since", t)).transpose()?,
        until: until.as_deref().map(|t| instant("audit authentications: --until", t)).transpose()?,
    };
    let pool = iamd::db::connect(settings.database.url.expose(), 1).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut after, mut shown) = (0, 0u64);
    loop {
        let page = audit::list(&pool, &filter, after, 1_000).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for entry in &page {
            let line = if json { serde_json::to_string(entry)? } else { audit::render_text(entry) };
            writeln!(out, "{line}").map_err(|e| anyhow::anyhow!("audit authentications: writing: {e}"))?;
            shown += 1;
        }
    }
    out.flush()?;
    if !json {
        eprintln!("audit authentications: {shown} record{}", if shown == 1 { "" } else { "s" });
    }
    Ok(())
}

/// Parses an RFC 3339 instant given as `flag`.
pub fn instant(flag: &str, t: &str) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    use iamd::protocol::time;
    time::instant(t)
        .map_err(|e| anyhow::anyhow!("{flag} {t:?} is not an RFC 3339 instant ({e}); e.g. {}", time::EXAMPLE))
}

/// Prints the state at `--at` as text lines or one JSON document.
pub async fn audit_replay(
    settings: Settings,
    at: &str,
    workspace: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let at = instant("audit replay: --at", at)?;
    let pool = iamd::db::connect(settings.database.url.expose(), 1).await?;
    let states = iamd::audit::replay(&pool, at, workspace.as_deref()).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&iamd::audit::render_json(&states, at))?);
    } else {
        print!("{}", iamd::audit::render_text(&states, at));
    }
    Ok(())
}
