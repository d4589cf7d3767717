//! The fleet's options for a short run on a paused clock, shared by the torture tests.

use std::time::Duration;

use cairn_drivers::fleet::FleetOptions;

/// `o` for a 20-second run of 4 nodes, with windows, ttls and heartbeats to match.
pub fn short(mut o: FleetOptions) -> FleetOptions {
    o.nodes = 4;
    o.duration = Duration::from_secs(20);
    o.turn_window = Duration::from_secs(2);
    o.turn_jitter = Duration::from_millis(300);
    o.lock_ttl = Duration::from_secs(2);
    o.heartbeat = Duration::from_millis(500);
    o.data_every = Duration::from_millis(300);
    o
}
