use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = pygrate::cli::Cli::parse();
    let interrupt = pygrate::interrupt::Interrupt::default();
    if let Err(e) = pygrate::interrupt::on_signals(interrupt.clone()) {
        // Without it a signal is a kill: the state stays truthful, if vaguer.
        let _ = writeln!(std::io::stderr().lock(), "warning: cannot handle SIGINT/SIGTERM: {e}");
    }
    match pygrate::app::run(&cli, &interrupt) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            // A closed stderr must not turn an error into a panic.
            let _ = writeln!(std::io::stderr().lock(), "error: {error}");
            ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(1))
        }
    }
}
