//! The `cairn` binary. Everything lives in the library's `cli` module.

fn main() {
    // Before anything else: `cairn __guard` (see `cli::guard_if_asked`) runs no runtime.
    cairn::cli::guard_if_asked();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cairn: cannot start the async runtime: {e}");
            std::process::exit(cairn::cli::exit::FAILURE);
        }
    };
    // `exit` skips the runtime's drop, which would wait for blocking tasks (a stdin read).
    std::process::exit(runtime.block_on(cairn::cli::main()));
}
