//! `kith`: the command line of a Kith node. Every command except `init`, `daemon` and `wipe`
//! is a thin client of the daemon's control socket. See the contract in the README.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod args;
mod demo;
mod output;
mod passphrase;
mod when;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use clap::Parser as _;
use kith_ipc::{Client, ClientError, ErrorKind, FeedFilter, Reply, Request};

use crate::args::{CircleCommand, Cli, Command, InviteCommand};

/// A failure and the exit code the contract gives it.
#[derive(Debug)]
enum Failure {
    /// Wrong usage: exit 2.
    Usage(String),
    /// The daemon is not running: exit 3.
    NotRunning,
    /// Anything else: exit 1.
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Failed(e)
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::NotRunning => Failure::NotRunning,
            ClientError::Remote(reply) if reply.kind == ErrorKind::Usage => {
                Failure::Usage(reply.message)
            }
            other => Failure::Failed(other.into()),
        }
    }
}

/// jemalloc hands freed memory back to the system; glibc's malloc kept about 30 MB of a
/// daemon's start-up garbage (decrypting and applying a 10,000-entry circle) for good.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let (code, message) = match failure {
                Failure::Usage(message) => (2, message),
                Failure::NotRunning => (3, ClientError::NotRunning.to_string()),
                Failure::Failed(error) => (1, one_line(&error)),
            };
            eprintln!("error: {message}");
            ExitCode::from(code)
        }
    }
}

/// Help and version print as clap prints them; every other parse error becomes one
/// `error:` line and exit code 2.
fn usage_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind::{
        DisplayHelp, DisplayHelpOnMissingArgumentOrSubcommand, DisplayVersion,
    };
    match error.kind() {
        DisplayHelp | DisplayVersion => {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            return ExitCode::from(2);
        }
        _ => {}
    }
    let text = error.to_string();
    let message: Vec<&str> = text
        .lines()
        .take_while(|line| !line.trim().is_empty())
        .map(str::trim)
        .collect();
    let message = message.join(" ");
    eprintln!("error: {}", message.trim_start_matches("error: "));
    ExitCode::from(2)
}

/// The error and its causes on one line, without repeating a cause already in the message.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

fn home_dir(cli: &Cli) -> Result<PathBuf, Failure> {
    if let Some(home) = &cli.home {
        return Ok(home.clone());
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .ok_or_else(|| {
            Failure::Usage("cannot tell where to keep data: set --home or KITH_HOME".into())
        })?;
    Ok(data.join("kith"))
}

fn run(cli: Cli) -> Result<(), Failure> {
    // The demo makes its own homes and never looks at the user's.
    if let Command::Demo { fast, seconds } = &cli.command {
        return demo::run(*fast, *seconds);
    }
    let home = home_dir(&cli)?;
    match &cli.command {
        Command::Init { name } => {
            let passphrase = passphrase::obtain(cli.passphrase_file.as_deref(), true)?;
            let member = kith_daemon::init_home(&home, name, &passphrase)
                .context("cannot create the identity")?;
            println!("{member}");
            Ok(())
        }
        Command::Daemon { listen, no_mdns } => run_daemon(&cli, home, listen.clone(), !no_mdns),
        Command::Wipe { yes } => {
            if !yes {
                return Err(Failure::Usage(
                    "`kith wipe` destroys this node's keys and data; run `kith wipe --yes`".into(),
                ));
            }
            runtime()?.block_on(wipe(&home))
        }
        _ => runtime()?.block_on(client_command(&cli, &home)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(Failure::Failed)
}

fn run_daemon(cli: &Cli, home: PathBuf, listen: Vec<String>, mdns: bool) -> Result<(), Failure> {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KITH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if !kith_store::is_initialized(&home) {
        return Err(Failure::Failed(anyhow::anyhow!(
            "no Kith identity in {} (run `kith init --name NAME` first)",
            home.display()
        )));
    }
    let passphrase = passphrase::obtain(cli.passphrase_file.as_deref(), false)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let config = kith_daemon::DaemonConfig {
        home,
        passphrase,
        listen,
        mdns,
    };
    runtime
        .block_on(kith_daemon::run(config, shutdown_signal()))
        .map_err(|e| Failure::Failed(e.into()))?;
    Ok(())
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers we still stop on ctrl-c through the default handler.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// Destroys the key file first (crypto-erase, works with or without a daemon), then stops a
/// running daemon and removes what is left.
async fn wipe(home: &std::path::Path) -> Result<(), Failure> {
    let client = Client::connect(home).await;
    kith_store::wipe(home).context("cannot destroy the keys")?;
    if let Ok(mut client) = client {
        // The daemon stops without writing; a failure here changes nothing already done.
        let _ = client.request(&Request::Wipe).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while home.join(kith_ipc::SOCKET_FILE).exists() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    kith_daemon::wipe_home(home).context("cannot remove the data")?;
    println!(
        "wiped: the keys are destroyed and nothing left in {} can be read",
        home.display()
    );
    Ok(())
}

async fn client_command(cli: &Cli, home: &std::path::Path) -> Result<(), Failure> {
    let json = cli.json;
    let mut client = Client::connect(home).await?;
    match &cli.command {
        Command::Status => {
            let reply = client.request(&Request::Status).await?;
            output::status(&reply, json)
        }
        Command::Circle(CircleCommand::Create { name }) => {
            let reply = client
                .request(&Request::CircleCreate { name: name.clone() })
                .await?;
            output::created(&reply, json)
        }
        Command::Circle(CircleCommand::List) => {
            let reply = client.request(&Request::CircleList).await?;
            output::circles(&reply, json)
        }
        Command::Members { circle } => {
            let reply = client
                .request(&Request::Members {
                    circle: circle.clone(),
                })
                .await?;
            output::members(&reply, json)
        }
        Command::Checkin {
            circle,
            mood,
            note,
            would_help,
            to,
        } => {
            let reply = client
                .request(&Request::CheckIn {
                    circle: circle.clone(),
                    mood: mood.clone(),
                    note: note.clone(),
                    help: would_help.clone(),
                    to: to.clone(),
                })
                .await?;
            output::created(&reply, json)
        }
        Command::Ask {
            circle,
            kind,
            title,
            details,
            needed_by,
            from,
            urgent,
            urgency,
            helpers,
            every,
            for_,
            at,
            to,
        } => {
            let request = ask_request(AskArgs {
                circle,
                kind,
                title,
                details,
                needed_by,
                from,
                urgent: *urgent,
                urgency,
                helpers: *helpers,
                every,
                for_,
                at,
                to,
            })
            .map_err(Failure::Usage)?;
            let reply = client.request(&request).await?;
            output::created(&reply, json)
        }
        Command::Offer {
            circle,
            kind,
            title,
            details,
            when,
            to,
        } => {
            let reply = client
                .request(&Request::Offer {
                    circle: circle.clone(),
                    kind: kind.clone(),
                    title: title.clone(),
                    details: details.clone(),
                    when: when.clone(),
                    to: to.clone(),
                })
                .await?;
            output::created(&reply, json)
        }
        Command::Offers { circle } => {
            let reply = client
                .request(&Request::Offers {
                    circle: circle.clone(),
                })
                .await?;
            output::offers(&reply, json)
        }
        Command::Accept { id, message } => {
            let request = Request::Claim {
                item: id.clone(),
                slot: None,
                message: message.clone(),
            };
            edit(&mut client, request, json).await
        }
        Command::Withdraw { id } => {
            edit(&mut client, Request::Cancel { item: id.clone() }, json).await
        }
        Command::Nudge {
            member,
            circle,
            note,
        } => {
            let reply = client
                .request(&Request::Nudge {
                    circle: circle.clone(),
                    member: member.clone(),
                    note: note.clone(),
                })
                .await?;
            output::created(&reply, json)
        }
        Command::Thank { id, member, note } => {
            let request = Request::Thank {
                item: id.clone(),
                member: member.clone(),
                note: note.clone(),
            };
            edit(&mut client, request, json).await
        }
        Command::Edit {
            id,
            title,
            details,
            note,
            needed_by,
            when,
        } => {
            let needed_by = needed_by
                .as_deref()
                .map(when::parse_when)
                .transpose()
                .map_err(Failure::Usage)?;
            let request = Request::Edit {
                item: id.clone(),
                title: title.clone(),
                details: details.clone(),
                note: note.clone(),
                needed_by,
                when: when.clone(),
            };
            edit(&mut client, request, json).await
        }
        Command::Quiet { hours } => {
            let hours = match hours.trim().to_lowercase().as_str() {
                "off" | "none" => None,
                _ => Some(hours.clone()),
            };
            let reply = client.request(&Request::Quiet { hours }).await?;
            output::notify(&reply, json)
        }
        Command::Notify { detail } => {
            let detail = detail.as_deref().map(|d| d == "on");
            let reply = client.request(&Request::Notify { detail }).await?;
            output::notify(&reply, json)
        }
        Command::Invite {
            action: Some(InviteCommand::List { circle }),
            ..
        } => {
            let reply = client
                .request(&Request::Invites {
                    circle: circle.clone(),
                })
                .await?;
            output::invites(&reply, json)
        }
        Command::Invite {
            action: Some(InviteCommand::Revoke { id, circle }),
            ..
        } => {
            let request = Request::RevokeInvite {
                circle: circle.clone(),
                id: id.clone(),
            };
            let reply = client.request(&request).await?;
            output::done(&request, &reply, json)
        }
        Command::Remove {
            member,
            circle,
            dry_run,
        } => {
            let reply = client
                .request(&Request::Remove {
                    circle: circle.clone(),
                    member: member.clone(),
                    dry_run: *dry_run,
                })
                .await?;
            output::removal(&reply, json)
        }
        Command::Approve { id, circle } => {
            let reply = client
                .request(&Request::Approve {
                    circle: circle.clone(),
                    id: id.clone(),
                })
                .await?;
            output::removal(&reply, json)
        }
        Command::Pending { circle } => {
            let reply = client
                .request(&Request::Pending {
                    circle: circle.clone(),
                })
                .await?;
            output::pending(&reply, json)
        }
        Command::Role {
            member,
            role,
            circle,
        } => {
            let request = Request::SetRole {
                circle: circle.clone(),
                member: member.clone(),
                role: role.clone(),
            };
            let reply = client.request(&request).await?;
            match reply {
                // Under a policy of several approvals: waiting for them.
                Reply::Removal { .. } => output::removal(&reply, json),
                _ => output::done(&request, &reply, json),
            }
        }
        Command::Circle(CircleCommand::Policy { approvals, circle }) => {
            let reply = client
                .request(&Request::Policy {
                    circle: circle.clone(),
                    approvals: *approvals,
                })
                .await?;
            output::removal(&reply, json)
        }
        Command::Invite {
            action: None,
            circle,
            ttl,
            uses,
            qr,
        } => {
            let reply = client
                .request(&Request::Invite {
                    circle: circle.clone(),
                    ttl_secs: *ttl,
                    uses: *uses,
                })
                .await?;
            output::invite(&reply, json)?;
            if *qr && let Reply::Invite { code, .. } = &reply {
                eprint!("{}", output::qr(code)?);
            }
            Ok(())
        }
        Command::Join { code } => {
            let reply = client
                .request(&Request::Join { code: code.clone() })
                .await?;
            output::created(&reply, json)
        }
        Command::Claim { id, slot, message } => {
            let request = Request::Claim {
                item: id.clone(),
                slot: slot.clone(),
                message: message.clone(),
            };
            edit(&mut client, request, json).await
        }
        Command::Unclaim { id, slot } => {
            let request = Request::Unclaim {
                item: id.clone(),
                slot: slot.clone(),
            };
            edit(&mut client, request, json).await
        }
        Command::Done { id } => edit(&mut client, Request::Done { item: id.clone() }, json).await,
        Command::Cancel { id } => {
            edit(&mut client, Request::Cancel { item: id.clone() }, json).await
        }
        Command::Reply { id, text } => {
            edit(
                &mut client,
                Request::Reply {
                    item: id.clone(),
                    text: text.clone(),
                },
                json,
            )
            .await
        }
        Command::Feed {
            circle,
            limit,
            open,
            mine,
            claimed_by_me,
            kind,
        } => {
            let reply = client
                .request(&Request::Feed {
                    circle: circle.clone(),
                    limit: *limit,
                    filter: FeedFilter {
                        open: *open,
                        mine: *mine,
                        claimed_by_me: *claimed_by_me,
                        kind: kind.clone(),
                    },
                })
                .await?;
            output::feed(&reply, json)
        }
        Command::Show { id } => {
            let reply = client.request(&Request::Show { item: id.clone() }).await?;
            output::show(&reply, json)
        }
        Command::Watch { circle } => {
            let reply = client
                .request(&Request::Watch {
                    circle: circle.clone(),
                })
                .await?;
            if !matches!(reply, Reply::Watching { .. }) {
                return Err(Failure::Failed(anyhow::anyhow!(
                    "the daemon did not start a watch"
                )));
            }
            output::watch(&mut client, json).await
        }
        Command::Export { circle, format: _ } => {
            let reply = client
                .request(&Request::Export {
                    circle: circle.clone(),
                })
                .await?;
            output::export(&reply)
        }
        Command::Init { .. }
        | Command::Daemon { .. }
        | Command::Wipe { .. }
        | Command::Demo { .. } => Ok(()),
    }
}

/// What `kith ask` was given.
struct AskArgs<'a> {
    circle: &'a Option<String>,
    kind: &'a str,
    title: &'a str,
    details: &'a Option<String>,
    needed_by: &'a Option<String>,
    from: &'a Option<String>,
    urgent: bool,
    urgency: &'a Option<String>,
    helpers: Option<u32>,
    every: &'a Option<String>,
    for_: &'a Option<String>,
    at: &'a Option<String>,
    to: &'a [String],
}

/// Turns the words of `kith ask` into times and slots, in the local time zone.
fn ask_request(args: AskArgs<'_>) -> Result<Request, String> {
    let mut needed_by = args
        .needed_by
        .as_deref()
        .map(when::parse_when)
        .transpose()?;
    if needed_by.is_none()
        && let Some(word) = args.urgency
    {
        needed_by = when::horizon_deadline(word)?;
    } else if let Some(word) = args.urgency {
        when::horizon_deadline(word)?;
    }
    let (window_start, slots) = match (args.every, args.for_) {
        (Some(days), Some(length)) => (
            None,
            when::expand_slots(days, length, args.from.as_deref(), args.at.as_deref())?,
        ),
        _ => (
            args.from.as_deref().map(when::parse_start).transpose()?,
            Vec::new(),
        ),
    };
    if window_start.is_some() && needed_by.is_none() {
        return Err("--from needs --needed-by (the end of the window) or --every".into());
    }
    Ok(Request::Ask {
        circle: args.circle.clone(),
        kind: args.kind.to_string(),
        title: args.title.to_string(),
        details: args.details.clone(),
        needed_by,
        urgent: args.urgent,
        window_start,
        horizon: args.urgency.clone(),
        helpers: args.helpers,
        slots,
        to: args.to.to_vec(),
    })
}

async fn edit(client: &mut Client, request: Request, json: bool) -> Result<(), Failure> {
    let reply = client.request(&request).await?;
    output::done(&request, &reply, json)
}
