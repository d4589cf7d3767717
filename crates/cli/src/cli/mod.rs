//! The `cairn` command line: a thin layer over the library. `main.rs` only calls [`main`].

pub mod args;
mod bench;
mod child;
mod data;
pub mod discover;
mod doctor;
pub mod duration;
pub mod exit;
mod fleet;
mod fleet_view;
mod help;
mod lock;
pub mod logging;
mod node;
mod ops;
pub mod output;
mod preflight;
mod protocol;
mod status;
mod turn;
mod turn_result;

use clap::Parser;

pub use child::guard_if_asked;
pub use logging::init as init_logging;
use preflight::Access;

use args::{
    Cli, Command, Global, LockCommand, LogCommand, NodeCommand, RecordCommand, StrategyArg,
    StreamCommand, TurnCommand,
};
use cairn::error::Error;
use cairn::lock::LockOptions;
use cairn::manifest::Strategy;
use cairn::store::url;
use cairn::{Cairn, CairnBuilder, Name, StrategyChoice};
use output::say;

/// What a command fails with: the library's error, or stdout that could not be written.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The library's error.
    Cairn(Error),
    /// stdout could not be written (a pipe whose reader exited, a terminal that hung up).
    /// The command's work is done or undone as its docs say (a held lock is released);
    /// nothing more is printed.
    Output(std::io::Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Cairn(e)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Cairn(e) => e.fmt(f),
            Failure::Output(e) => write!(f, "cannot write to stdout: {e}"),
        }
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Failure::Cairn(e) => e.source(),
            Failure::Output(e) => Some(e),
        }
    }
}

impl Failure {
    /// A short stable name for the kind of failure (`--json`'s `error.kind`).
    fn kind(&self) -> &'static str {
        match self {
            Failure::Cairn(e) => e.kind(),
            Failure::Output(_) => "output",
        }
    }
}

/// A command's result.
pub(crate) type Result<T> = std::result::Result<T, Failure>;

/// Installs the Prometheus exporter as the metrics recorder, serving `/metrics` on `addr`
/// for as long as the process runs.
fn serve_metrics(addr: std::net::SocketAddr) -> Result<()> {
    // Bind first, so that a busy or forbidden address is a clear configuration error, not a
    // failure in the exporter's background task.
    std::net::TcpListener::bind(addr)
        .map_err(|e| Error::Config(format!("cannot serve metrics on {addr}: {e}")))?;
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| Error::Config(format!("cannot serve metrics on {addr}: {e}")))?;
    cairn::telemetry::describe();
    Ok(())
}

/// Parses arguments, runs the command, and returns the process exit code.
pub async fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    let json = cli.global.json;
    match dispatch(cli).await {
        Ok(code) => code,
        Err(e) => report(&e, json),
    }
}

/// Help and the version print as clap prints them. A bad value is one line (`invalid value
/// '0' for '--nodes <NODES>': …`); under `--json` every usage error is one JSON object.
fn usage_error(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    let json = std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json");
    let help = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if e.kind() == ErrorKind::UnknownArgument {
        let args: Vec<String> = std::env::args().skip(1).collect();
        if let Some(fixed) = help::separator_hint(&args) {
            let tip = format!("the command to run goes after `--`: {fixed}");
            if json {
                print_json_error("usage", &tip, exit::USAGE);
            }
            help::print_with_tip(&e, &tip);
            return exit::USAGE;
        }
    }
    if help || !(json || e.kind() == ErrorKind::ValueValidation) {
        e.exit()
    }
    let text = e.render().to_string();
    let line = text
        .lines()
        .next()
        .unwrap_or("invalid usage")
        .trim_start_matches("error: ");
    if json {
        print_json_error("usage", line, exit::USAGE);
    }
    say!("cairn: {line}");
    exit::USAGE
}

async fn dispatch(cli: Cli) -> Result<i32> {
    let access = preflight::check(&cli)?;
    let g = &cli.global;
    if let Some(addr) = g.metrics_addr {
        serve_metrics(addr)?;
    }
    let url = store_url(g, access)?;
    let connect = |g| connect(g, &url, access);
    match &cli.command {
        Command::Bench(a) => bench::run(&url, g.strategy, a, g.json).await,
        Command::Fleet(a) => fleet::run(&url, strategy(g), a, g.json).await,
        Command::Gc(a) => ops::gc(&connect(g).await?, a, g.json).await,
        Command::Status(a) => {
            let cairn = connect(g).await?;
            let topic = match (&a.topic, audit(g)?) {
                (Some(t), _) => Some(Name::new(t)?),
                (None, t) => t,
            };
            let st = status::Status::new(&cairn, topic, a.watch.interval);
            ops::show("cairn status", watch(&a.watch), g.json, || st.frame(g.json)).await
        }
        Command::Protocol { command } => match command {
            args::ProtocolCommand::Recreate => {
                protocol::recreate(builder(g, &url, access).await?, &url, g.json).await
            }
        },
        Command::Doctor => {
            doctor::run(builder(g, &url, access).await?, &url, g.json).await?;
            Ok(exit::OK)
        }
        Command::Stream { command } => {
            let s = connect(g).await?.streams();
            match command {
                StreamCommand::Create { name, metadata } => {
                    data::stream_create(&s, name, metadata.as_deref(), g.json).await
                }
                StreamCommand::Ls(w) => {
                    let v = s.view(cairn::cache::CacheOptions {
                        fresh: w.interval / 2,
                        ..cairn::cache::CacheOptions::for_streams()
                    });
                    ops::show("cairn stream ls", watch(w), g.json, || {
                        data::stream_ls(&v, g.json)
                    })
                    .await
                }
                StreamCommand::Show { name } => data::stream_show(&s, name, g.json).await,
                StreamCommand::Update { name, metadata } => {
                    data::stream_update(&s, name, metadata, g.json).await
                }
                StreamCommand::Delete { name } => data::stream_delete(&s, name, g.json).await,
                StreamCommand::Watch { interval, once } => {
                    data::stream_watch(&s, *interval, *once, g.json).await
                }
            }
        }
        Command::Record { command } => {
            let r = connect(g).await?.records();
            match command {
                RecordCommand::Put {
                    namespace,
                    key,
                    version,
                    value,
                } => data::record_put(&r, namespace, key, *version, value, g.json).await,
                RecordCommand::Get { namespace, key } => {
                    data::record_get(&r, namespace, key, g.json).await
                }
                RecordCommand::Delete { namespace, key } => {
                    ops::record_delete(&r, namespace, key, g.json).await
                }
            }
        }
        Command::Log { command } => {
            let l = connect(g).await?.event_log();
            match command {
                LogCommand::Append { topic, event } => {
                    data::log_append(&l, topic, event, g.json).await
                }
                LogCommand::Tail {
                    topic,
                    from,
                    lines,
                    follow,
                    interval,
                } => {
                    let start = match lines {
                        Some(n) => data::Start::Last(*n),
                        None => data::Start::From(*from),
                    };
                    data::log_tail(&l, topic, start, *follow, *interval, g.json).await
                }
            }
        }
        Command::Turn { command } => {
            let cairn = connect(g).await?;
            let trail = audit_trail(g, &cairn)?;
            let turns = |o: cairn::turn::TurnOptions| -> Result<cairn::turn::Turns> {
                let t = cairn.turns(o);
                Ok(match &trail {
                    Some(a) => t.with_audit(a.clone()),
                    None => t,
                })
            };
            let code = match command {
                TurnCommand::Run {
                    name,
                    every,
                    jitter,
                    keep_running,
                    command,
                } => {
                    let t = turns(turn::options(*every, *jitter))?;
                    turn::run(&t, cairn.node(), name, *keep_running, command, g.json).await
                }
                TurnCommand::Ls(w) => {
                    let t = turns(Default::default())?;
                    ops::show("cairn turn ls", watch(w), g.json, || turn::ls(&t, g.json)).await
                }
                TurnCommand::Configure {
                    name,
                    every,
                    jitter,
                } => {
                    turn::configure(&turns(Default::default())?, name, *every, *jitter, g.json)
                        .await
                }
                TurnCommand::Show { name } => {
                    turn::show(&turns(Default::default())?, name, g.json).await
                }
            };
            flushed(trail.as_ref(), code).await
        }
        Command::Node { command } => {
            let cairn = connect(g).await?;
            match command {
                NodeCommand::Heartbeat { interval } => {
                    let m = cairn.nodes(cairn::node::NodeOptions {
                        interval: *interval,
                        ..Default::default()
                    });
                    node::heartbeat(&m, g.json).await
                }
                NodeCommand::Ls(w) => {
                    let m = cairn.nodes(Default::default());
                    let v = m.view(cairn::cache::CacheOptions {
                        fresh: w.interval / 2,
                        ..cairn::cache::CacheOptions::for_nodes(m.options().interval)
                    });
                    ops::show("cairn node ls", watch(w), g.json, || node::ls(&v, g.json)).await
                }
                NodeCommand::Forget { id, force } => {
                    let m = cairn.nodes(Default::default());
                    ops::node_forget(&m, id, *force, g.json).await
                }
            }
        }
        Command::Lock { command } => {
            let cairn = connect(g).await?;
            let trail = audit_trail(g, &cairn)?;
            let locks = |o: LockOptions| -> Result<cairn::lock::Locks> {
                let l = cairn.locks(o)?;
                Ok(match &trail {
                    Some(a) => l.with_audit(a.clone()),
                    None => l,
                })
            };
            let code = match command {
                LockCommand::Run {
                    acquire,
                    grace,
                    shell_command,
                    command,
                } => {
                    // The holder gives up early enough for COMMAND's grace to run out before
                    // any other node may take over.
                    let grace = lock::grace(acquire.ttl, *grace);
                    let l = locks(LockOptions::with_ttl(acquire.ttl).with_stop_grace(grace))?;
                    let sh;
                    let command = match shell_command {
                        Some(c) => {
                            sh = ["sh".to_string(), "-c".to_string(), c.clone()];
                            &sh[..]
                        }
                        None => &command[..],
                    };
                    let args = lock::RunArgs {
                        name: &acquire.name,
                        wait: acquire.wait(),
                        grace,
                        conflict_code: acquire.conflict_exit_code.into(),
                        command,
                        json: g.json,
                    };
                    lock::run(&cairn, &l, args).await
                }
                LockCommand::Hold { acquire: a } => {
                    let l = locks(LockOptions::with_ttl(a.ttl))?;
                    lock::hold(&l, &a.name, a.wait(), a.conflict_exit_code.into(), g.json).await
                }
                LockCommand::Ls(w) => {
                    let l = locks(LockOptions::default())?;
                    ops::show("cairn lock ls", watch(w), g.json, || lock::ls(&l, g.json)).await
                }
                LockCommand::Show { name } => {
                    lock::show(&locks(LockOptions::default())?, name, g.json).await
                }
                LockCommand::Break { name, token, force } => {
                    let l = locks(LockOptions::default())?;
                    lock::break_lock(&l, name, *token, *force, g.json).await
                }
            };
            flushed(trail.as_ref(), code).await
        }
    }
}

/// The refresh interval when `--watch` was given.
fn watch(w: &args::WatchArgs) -> Option<std::time::Duration> {
    w.watch.then_some(w.interval)
}

fn audit(g: &Global) -> Result<Option<cairn::Name>> {
    Ok(g.audit_topic.as_deref().map(cairn::Name::new).transpose()?)
}

/// The audit trail `--audit-topic` asks for, in `cairn`'s event log.
fn audit_trail(g: &Global, cairn: &cairn::Cairn) -> Result<Option<cairn::log::Audit>> {
    Ok(audit(g)?.map(|topic| cairn::log::Audit::new(cairn.event_log(), topic)))
}

/// `result`, once the audit trail (written in the background) is all written: before
/// cairn exits.
async fn flushed<T>(trail: Option<&cairn::log::Audit>, result: T) -> T {
    if let Some(a) = trail {
        a.flush().await;
    }
    result
}

/// The store the command works on: `--store`, or the nearest `.cairn` directory from here
/// up (created here by a command that writes, where there is none).
fn store_url(g: &Global, access: Access) -> Result<String> {
    match &g.store {
        Some(url) => Ok(url.clone()),
        None => Ok(discover::default_store(access.may_create())?),
    }
}

/// Opens the store at `url` for the command, reads its protocol record and returns the
/// handle. A command that only looks creates nothing and never records the protocol; one
/// that writes records it (probing first) where there is none.
async fn connect(g: &Global, url: &str, access: Access) -> Result<Cairn> {
    Ok(builder(g, url, access).await?.build().await?)
}

/// The handle's builder: the store opened as `access` allows, the node id, the strategy.
async fn builder(g: &Global, url: &str, access: Access) -> Result<CairnBuilder> {
    let options = url::OpenOptions {
        create: access.may_create(),
        timeout: g.timeout,
    };
    let opened = url::open_with(url, &options).await?;
    let store_options = opened.store_options(g.timeout);
    let mut b = Cairn::opened(opened).store_options(store_options);
    if access.observer() {
        b = b.observer();
    }
    let mut node = match &g.node {
        Some(n) => Name::new(n)?,
        None => cairn::default_node_id(),
    };
    if g.node_pid {
        node = cairn::node_id_with_pid(&node)?;
    }
    Ok(b.node(node.to_string())?.strategy(strategy(g)))
}

fn strategy(g: &Global) -> StrategyChoice {
    match g.strategy {
        StrategyArg::Auto => StrategyChoice::Probe,
        StrategyArg::EtagCas => StrategyChoice::Fixed(Strategy::EtagCas),
        StrategyArg::VersionChain => StrategyChoice::Fixed(Strategy::VersionChain),
    }
}

/// Prints an error in one line on stderr (under `--json` also as one JSON object on
/// stdout) and returns its exit code. The full error, with every source, is logged at
/// debug level (`CAIRN_LOG=debug`).
/// The message, which may quote stored data, is escaped ([`output::text`]). An error
/// writing stdout ([`Failure::Output`]) is only said on stderr: stdout is closed.
fn report(f: &Failure, json: bool) -> i32 {
    let (code, message) = match f {
        Failure::Cairn(e) => (exit_code(e), one_line(&with_hint(f))),
        Failure::Output(_) => (exit::FAILURE, one_line(&f.to_string())),
    };
    tracing::debug!(error = ?f, "command failed");
    if json && !matches!(f, Failure::Output(_)) {
        print_json_error(f.kind(), &message, code);
    }
    say!("cairn: {}", output::text(&message));
    code
}

/// `e`'s message followed by what the command line's user can do about it ([`hint`]).
pub(crate) fn with_hint(f: &Failure) -> String {
    let Failure::Cairn(e) = f else {
        return f.to_string();
    };
    match hint(e) {
        Some(h) => format!("{e}: {h}"),
        None => e.to_string(),
    }
}

/// What the command line's user can do about `e`, in its flags and environment (the
/// library's messages state only what happened).
fn hint(e: &Error) -> Option<String> {
    use cairn::store::cause::{diagnose, Diagnosis};
    Some(match e {
        Error::NoSuchBucket { .. } => {
            "create it, or fix the bucket in the store URL (--store, CAIRN_STORE)".into()
        }
        Error::NoCredentials { .. } => "set AWS_PROFILE, or AWS_ACCESS_KEY_ID and \
                                        AWS_SECRET_ACCESS_KEY, or run where an instance or \
                                        task role provides them"
            .into(),
        Error::NoStore { named: None, .. } => "run this in or below a directory that has a \
                                               .cairn store, or name one with --store / \
                                               CAIRN_STORE"
            .into(),
        Error::Unavailable { source, .. } => match diagnose(source) {
            Diagnosis::Connect { .. } => {
                "check that the store is up and that its endpoint (AWS_ENDPOINT_URL) is right"
                    .into()
            }
            Diagnosis::Timeout { .. } => {
                "check it, or allow longer with --timeout (CAIRN_TIMEOUT)".into()
            }
            _ => return None,
        },
        Error::ProtocolMismatch { recorded, .. } => {
            format!("use --strategy auto or {recorded}")
        }
        Error::TurnMismatch { turn, .. } => format!(
            "drop --every/--jitter, or change the turn for every node with `cairn turn \
             configure {turn} --every … --jitter …`"
        ),
        Error::ProtocolRecordMissing { .. } => "check why it vanished (no lifecycle rule may \
                                                 expire _cairn/), then re-create it with \
                                                 `cairn protocol recreate`"
            .into(),
        Error::ProtocolChanged { .. } => "restart it".into(),
        Error::DuplicateNode { .. } => "give one of the two processes another id (--node)".into(),
        _ => return None,
    })
}

/// `{"error": {"kind": …, "message": …, "exit": …}}` on stdout (nothing if stdout is
/// closed: the line on stderr stays).
fn print_json_error(kind: &str, message: &str, code: i32) {
    let _ = output::json(
        &serde_json::json!({ "error": { "kind": kind, "message": message, "exit": code } }),
    );
}

/// The exit code for an error (see [`exit`]).
fn exit_code(e: &Error) -> i32 {
    match e {
        Error::StoreRefused { .. } => exit::STORE_REFUSED,
        Error::DuplicateNode { .. } => exit::DUPLICATE_NODE,
        Error::Config(_)
        | Error::InvalidName { .. }
        | Error::ProtocolMismatch { .. }
        | Error::ProtocolRecordMissing { .. }
        | Error::ProtocolContradicted { .. }
        | Error::TurnMismatch { .. }
        | Error::NoStore { .. }
        | Error::NoSuchBucket { .. }
        | Error::NoCredentials { .. }
        | Error::Store { .. } => exit::USAGE,
        _ => exit::FAILURE,
    }
}

/// `text` with its line breaks turned into spaces.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
