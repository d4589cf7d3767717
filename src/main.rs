//! The `cairn` binary. Everything lives in the library's `cli` module.

fn main() {
    // Before anything else: `cairn __guard` (see `cli::guard_if_asked`) runs no runtime.
    cairn::cli::guard_if_asked();
    cairn::cli::init_logging();
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
