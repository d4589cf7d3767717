//! The `cairn` binary: a thin layer over the library (`cairn`) and its drivers
//! (`cairn_drivers`, for `cairn fleet` and `cairn bench`). The commands live in [`cli`].

mod cli;

fn main() {
    // Before anything else: `cairn __guard` (see `cli::guard_if_asked`) runs no runtime.
    cli::guard_if_asked();
    cli::init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cairn: cannot start the async runtime: {e}");
            std::process::exit(cli::exit::FAILURE);
        }
    };
    // `exit` skips the runtime's drop, which would wait for blocking tasks (a stdin read).
    std::process::exit(runtime.block_on(cli::main()));
}
