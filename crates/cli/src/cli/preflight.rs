//! Everything that can be checked without the store is checked before the first request:
//! names, JSON arguments, durations that must fit together, the store URL. A
//! mistake costs no request and no probe.

use super::args::{
    Cli, Command, LockCommand, LogCommand, NodeCommand, RecordCommand, StreamCommand, TurnCommand,
};
use super::data::json_arg;
use cairn::error::{Error, Result};
use cairn::lock::LockOptions;
use cairn::Name;

/// What a command does with the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only looks (lists, shows, watches, tails): never writes, never records the prefix's
    /// protocol, never probes, never creates a store.
    Look,
    /// `doctor`: probes (a scratch object, written and deleted) but records nothing.
    Probe,
    /// Coordinates: may record the prefix's protocol, and creates the default store where
    /// there is none.
    Write,
}

impl Access {
    /// Whether the command never records the prefix's protocol.
    pub fn observer(self) -> bool {
        self != Access::Write
    }

    /// Whether the command may create a store that does not exist yet.
    pub fn may_create(self) -> bool {
        self != Access::Look
    }
}

/// The `--timeout` range: below 100 ms even a healthy store times out; above an hour is no
/// bound at all.
const TIMEOUT_RANGE: std::ops::RangeInclusive<std::time::Duration> =
    std::time::Duration::from_millis(100)..=std::time::Duration::from_secs(3600);

/// Checks the whole command line locally. Returns what the command does with the store.
pub fn check(cli: &Cli) -> Result<Access> {
    let looks = looks(cli)?;
    Ok(match &cli.command {
        Command::Doctor => Access::Probe,
        _ if looks => Access::Look,
        _ => Access::Write,
    })
}

/// Whether the command only looks (lists, shows, watches).
fn looks(cli: &Cli) -> Result<bool> {
    let g = &cli.global;
    if !TIMEOUT_RANGE.contains(&g.timeout) {
        return Err(Error::Config(format!(
            "--timeout {}: allowed from 100ms to 1h",
            cairn::store::cause::show(g.timeout)
        )));
    }
    if let Some(url) = &g.store {
        cairn::store::url::parse(url)?;
    }
    if let Some(n) = &g.node {
        Name::new(n)?;
    }
    if let Some(t) = &g.audit_topic {
        Name::new(t)?;
    }
    let name = |n: &str| Name::new(n).map(|_| ());
    Ok(match &cli.command {
        Command::Doctor | Command::Bench(_) => true,
        Command::Status(a) => {
            if let Some(t) = &a.topic {
                name(t)?;
            }
            true
        }
        Command::Gc(a) => {
            for l in &a.log_before {
                super::ops::log_before(l)?;
            }
            false
        }
        // The fleet checks its own options (fleet::cli) and opens its own handles.
        Command::Fleet(_) => false,
        Command::Protocol { .. } => false,
        Command::Lock { command } => match command {
            LockCommand::Run {
                acquire: a, grace, ..
            } => {
                name(&a.name)?;
                LockOptions::with_ttl(a.ttl)
                    .with_stop_grace(super::lock::grace(a.ttl, *grace))
                    .validate()?;
                false
            }
            LockCommand::Hold { acquire: a } => {
                name(&a.name)?;
                LockOptions::with_ttl(a.ttl).validate()?;
                false
            }
            LockCommand::Ls(_) => true,
            LockCommand::Show { name: n } => name(n).map(|_| true)?,
            LockCommand::Break { name: n, force, .. } => {
                name(n)?;
                super::lock::check_break_confirmable(*force)?;
                false
            }
        },
        Command::Stream { command } => match command {
            StreamCommand::Create { name: n, metadata } => {
                name(n)?;
                if let Some(m) = metadata {
                    json_arg("--metadata", m)?;
                }
                false
            }
            StreamCommand::Update { name: n, metadata } => {
                name(n)?;
                json_arg("--metadata", metadata)?;
                false
            }
            StreamCommand::Delete { name: n } => name(n).map(|_| false)?,
            StreamCommand::Show { name: n } => name(n).map(|_| true)?,
            StreamCommand::Ls(_) | StreamCommand::Watch { .. } => true,
        },
        Command::Record { command } => match command {
            RecordCommand::Put {
                namespace,
                key,
                value,
                ..
            } => {
                name(namespace)?;
                name(key)?;
                json_arg("--value", value)?;
                false
            }
            RecordCommand::Get { namespace, key } => {
                name(namespace)?;
                name(key)?;
                true
            }
            RecordCommand::Delete { namespace, key } => {
                name(namespace)?;
                name(key)?;
                false
            }
        },
        Command::Log { command } => match command {
            LogCommand::Append { topic, event } => {
                name(topic)?;
                json_arg("the event", event)?;
                false
            }
            LogCommand::Tail { topic, .. } => name(topic).map(|_| true)?,
        },
        Command::Turn { command } => match command {
            TurnCommand::Run {
                name: n,
                every,
                jitter,
                ..
            } => {
                name(n)?;
                super::turn::options(*every, *jitter).validate()?;
                false
            }
            TurnCommand::Configure {
                name: n,
                every,
                jitter,
            } => {
                name(n)?;
                super::turn::options(Some(*every), *jitter).validate()?;
                false
            }
            TurnCommand::Ls(_) => true,
            TurnCommand::Show { name: n } => name(n).map(|_| true)?,
        },
        Command::Node { command } => match command {
            NodeCommand::Heartbeat { .. } => false,
            NodeCommand::Ls(_) => true,
            NodeCommand::Forget { id, .. } => name(id).map(|_| false)?,
        },
    })
}
