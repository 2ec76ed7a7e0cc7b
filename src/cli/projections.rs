//! `iamd projections rebuild|verify|generate`.

use crate::ProjectionsCommand;
use iamd::config::Settings;

/// `iamd projections rebuild|verify|generate`: progress on standard error every 100,000
/// events, one summary line on standard output; verify exits 2 when the tables differ.
pub async fn projections(settings: Settings, command: ProjectionsCommand) -> anyhow::Result<()> {
    use iamd::store::rebuild::{self, Mode};
    const EVERY: u64 = 100_000;
    let pool = iamd::db::connect(settings.database.url.expose(), 1).await?;
    if !iamd::store::migrations::is_migrated(&pool).await? {
        anyhow::bail!("projections: the database is not migrated; run `iamd migrate` first");
    }
    let mut client = pool.get().await?;
    let mut next = EVERY;
    let mut progress = |what: &str, n: u64| {
        if n >= next {
            eprintln!("projections {what}: {n} events…");
            next = (n / EVERY + 1) * EVERY;
        }
    };
    match command {
        ProjectionsCommand::Rebuild { online } => {
            let mode = if online { Mode::Online } else { Mode::Offline };
            let done = rebuild::rebuild(&mut client, mode, |n| progress("rebuild", n)).await?;
            // Every running server drops its API key cache: the swapped-in tables are the truth.
            use iamd::projections::key_cache::{payload, Change, CHANNEL};
            let flush = payload(&[Change::All]);
            if let Err(e) = client.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &flush]).await {
                eprintln!("projections rebuild: could not tell running servers to drop their API key caches ({e}); they expire within cache.api_keys_ttl");
            }
            let held = if online {
                format!(
                    "; {} catch-up pass{}, then {} events in {:.2} s with commands held",
                    done.passes,
                    if done.passes == 1 { "" } else { "es" },
                    done.locked_events,
                    done.locked_seconds
                )
            } else {
                String::new()
            };
            println!(
                "projections rebuild: {} events in {:.1} s ({:.0} events/s), {} tables swapped in{held}",
                done.events,
                done.seconds,
                done.events_per_second(),
                iamd::projections::READ_TABLES.len()
            );
        }
        ProjectionsCommand::Verify => {
            let found = rebuild::verify(&mut client, |n| progress("verify", n)).await?;
            if found.equal() {
                println!(
                    "projections verify: {} events, {} tables equal ({:.1} s)",
                    found.events, found.tables, found.seconds
                );
                return Ok(());
            }
            for d in &found.differences {
                println!("projections verify: {d}");
            }
            println!(
                "projections verify: {} events, {} difference{} ({} shown); `iamd projections rebuild` \
                 rewrites the read tables from the log",
                found.events,
                found.total_differences,
                if found.total_differences == 1 { "" } else { "s" },
                found.differences.len()
            );
            std::process::exit(2);
        }
        ProjectionsCommand::Generate { events, force } => {
            use iamd::tools::generate;
            if !force && !generate::log_is_synthetic(&client).await? {
                anyhow::bail!(
                    "projections generate: this log holds events iamd wrote; synthetic events (with a \
                     public password) go only into a database of their own (--force to write anyway)"
                );
            }
            let started = std::time::Instant::now();
            let made = generate::generate(&mut client, events, |n| progress("generate", n)).await?;
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "projections generate: {} events in {:.1} s ({:.0} events/s): {} workspaces, {} users \
                 ({} deleted, {} reusing a freed username), {} API keys ({} revocations); run \
                 `iamd projections rebuild` to project them",
                made.events,
                seconds,
                made.events as f64 / seconds.max(1e-9),
                made.workspaces,
                made.users,
                made.user_deletions,
                made.reused_usernames,
                made.api_keys,
                made.revocations
            );
        }
    }
    Ok(())
}
